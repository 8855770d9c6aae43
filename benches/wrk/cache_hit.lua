-- wrk script: the same deterministic chat completion again and again (set
-- GATEWAY_TOKEN in the environment): after the first, every request is a hit
-- of the response cache.
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"Plan a spring wedding in Kent"}],"max_tokens":64}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("GATEWAY_TOKEN")
