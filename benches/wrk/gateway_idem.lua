-- wrk script: gateway.lua's request with a fresh Idempotency-Key on every
-- request (set GATEWAY_TOKEN in the environment; with GATEWAY_TOKENS_FILE,
-- round robin over its tokens as in gateway.lua).
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Plan a spring wedding in Kent"}],"max_tokens":64}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("GATEWAY_TOKEN")
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local prefix = string.format("bench-%d-%08x-", os.time(), math.random(0, 0x7fffffff))
local bearers = {}
local file = os.getenv("GATEWAY_TOKENS_FILE")
if file and file ~= "" then
  for line in io.lines(file) do
    if line ~= "" then bearers[#bearers + 1] = "Bearer " .. line end
  end
end
local n = 0
function request()
  n = n + 1
  wrk.headers["Idempotency-Key"] = prefix .. n
  if #bearers > 0 then wrk.headers["Authorization"] = bearers[(n % #bearers) + 1] end
  return wrk.format()
end
