-- wrk: POST /chat with a JSON body (tests/bench/server-chat-vs-ts.sh).
wrk.method = "POST"
wrk.body = '{"message":"hello"}'
wrk.headers["Content-Type"] = "application/json"

-- Count statuses so a run full of errors is never reported as throughput.
counts = {}
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, k .. "=" .. v) end
  table.sort(parts)
  io.write("STATUS " .. table.concat(parts, " ") .. "\n")
end
