-- wrk script: the same small chat completion as gateway.lua, sent to the
-- canned upstream or the nginx proxy of benches/wrk/floor.sh (no token).
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Plan a spring wedding in Kent"}],"max_tokens":64}'
wrk.headers["Content-Type"] = "application/json"
