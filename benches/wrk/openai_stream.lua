-- wrk script: small streamed OpenAI chat completions (SSE, with the usage chunk).
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Plan a spring wedding in Kent"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-sim-openai-platform-000000000001"
