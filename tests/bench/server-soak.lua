-- wrk: a soak of mixed requests against claudelink-server
-- (tests/bench/server-soak.sh). Each thread sends its share of N requests
-- (wrk.thread:stop() then), rotating through chats (plain, with a session,
-- SSE), health and metrics reads, session create/delete, and bad input;
-- every response's status is counted. done() prints one line:
--   STATUS 200=... 404=... total=N
local reqs = {
  wrk.format("POST", "/chat", {["Content-Type"] = "application/json"}, '{"message":"hello"}'),
  wrk.format("GET", "/health/detailed"),
  wrk.format("POST", "/chat", {["Content-Type"] = "application/json",
                               ["Accept"] = "text/event-stream"}, '{"message":"stream"}'),
  wrk.format("GET", "/metrics"),
  wrk.format("POST", "/chat", {["Content-Type"] = "application/json"}, '{"message":'),
  wrk.format("GET", "/metrics?format=prometheus"),
  wrk.format("POST", "/sessions"),
  wrk.format("GET", "/health"),
  wrk.format("POST", "/chat", {["Content-Type"] = "application/json"}, '{"message":"again"}'),
  wrk.format("GET", "/no/such/path"),
  wrk.format("DELETE", "/sessions/00000000-0000-4000-8000-000000000000"),
  wrk.format("GET", "/health/stability"),
  wrk.format("PUT", "/chat"),
  wrk.format("GET", "/readyz"),
}
local threads = {}
local per_thread = 0
function setup(thread)
  table.insert(threads, thread)
end
counts = {}
local n, limit, i = 0, 0, 0
function init(args)
  limit = tonumber(args[1]) or 1000
  i = math.random(#reqs)
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  n = n + 1
  if n >= limit then wrk.thread:stop() end
end
function done(summary, latency, requests)
  local total, all = {}, 0
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do total[k] = (total[k] or 0) + v; all = all + v end
  end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, k .. "=" .. v) end
  table.sort(parts)
  io.write("STATUS " .. table.concat(parts, " ") .. " total=" .. all .. "\n")
  io.write(string.format("ERRORS connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
