-- wrk script: small plain chat completions through Switchboard's gateway with a
-- supplier token (set GATEWAY_TOKEN in the environment).
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Plan a spring wedding in Kent"}],"max_tokens":64}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("GATEWAY_TOKEN")
