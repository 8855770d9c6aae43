-- wrk script: small plain chat completions through Switchboard's gateway with a
-- supplier token (set GATEWAY_TOKEN in the environment). With
-- GATEWAY_TOKENS_FILE (one token a line), the requests go round robin over
-- those tokens instead (many suppliers: floor.sh's SWITCHBOARD_BENCH_SUPPLIERS).
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Plan a spring wedding in Kent"}],"max_tokens":64}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("GATEWAY_TOKEN")
local file = os.getenv("GATEWAY_TOKENS_FILE")
if file and file ~= "" then
  local bearers = {}
  for line in io.lines(file) do
    if line ~= "" then bearers[#bearers + 1] = "Bearer " .. line end
  end
  local n = 0
  function request()
    n = n + 1
    wrk.headers["Authorization"] = bearers[(n % #bearers) + 1]
    return wrk.format()
  end
end
