-- wrk script: small plain Anthropic Messages requests.
wrk.method = "POST"
wrk.body = '{"model":"claude-haiku-4-5","max_tokens":256,"messages":[{"role":"user","content":"Plan a spring wedding in Kent"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = "sk-ant-sim-anthropic-platform-0000001"
wrk.headers["anthropic-version"] = "2023-06-01"
