-- wrk script: deterministic chat completions that are all different (set
-- GATEWAY_TOKEN in the environment): every request is a miss of the response
-- cache — looked up, sent to the provider, and its answer stored — so a run
-- fills the cache with distinct answers (the memory bound's load).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("GATEWAY_TOKEN")
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local prefix = string.format("%d-%08x", os.time(), math.random(0, 0x7fffffff))
local n = 0
function request()
  n = n + 1
  wrk.body = string.format(
    '{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"Plan a spring wedding in Kent, variant %s-%d"}],"max_tokens":64}',
    prefix, n)
  return wrk.format()
end
