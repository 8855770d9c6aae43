-- wrk script: gateway.lua's request with a fresh Idempotency-Key on every
-- request (set GATEWAY_TOKEN in the environment).
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Plan a spring wedding in Kent"}],"max_tokens":64}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("GATEWAY_TOKEN")
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local prefix = string.format("bench-%d-%08x-", os.time(), math.random(0, 0x7fffffff))
local n = 0
function request()
  n = n + 1
  wrk.headers["Idempotency-Key"] = prefix .. n
  return wrk.format()
end
