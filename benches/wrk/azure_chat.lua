-- wrk script: small plain Azure OpenAI chat completions (deployment form).
wrk.method = "POST"
wrk.body = '{"messages":[{"role":"user","content":"Plan a spring wedding in Kent"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["api-key"] = "sim-azure-platform-00000000000000000001"
