-- wrk script: small plain OpenAI chat completions against `switchboard simulate` (demo scenario).
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Plan a spring wedding in Kent"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-sim-openai-platform-000000000001"
