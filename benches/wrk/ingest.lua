-- wrk script of benches/run.sh: posts the bench payload, one event a request or bulks, each
-- event with an event id of its own (so that exactly-once never turns one away as a duplicate)
-- and members cycling through a fixed set.
--
--   wrk -t2 -c64 -d10s -s benches/wrk/ingest.lua URL -- BULK TEMPLATE MEMBERS RUN_ID [HEADER=VALUE ...]
--
-- BULK: events a request (1: one JSON object a request; more: a JSON array of them).
-- TEMPLATE: the compact payload with "@ID@" in place of the event id and "@MEMBER@" in place of
-- the member's number (benches/run.sh writes it, timestamped now).
-- RUN_ID: unique to this wrk run; event ids are RUN_ID-THREAD-COUNTER.
-- At the end one JSON line goes to stdout (prefixed "WRK_RESULT "), the numbers wrk counted.

local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
end

local bulk, members, prefix
local before_id, between, after_member
local counter = 0

function init(args)
  bulk = tonumber(args[1]) or 1
  local file = assert(io.open(args[2], "r"))
  local template = file:read("*a"):gsub("%s+$", "")
  file:close()
  members = tonumber(args[3]) or 1000
  prefix = (args[4] or "wrk") .. "-" .. tostring(thread_number) .. "-"
  for i = 5, #args do
    local name, value = args[i]:match("^([^=]+)=(.*)$")
    if name then wrk.headers[name] = value end
  end
  local id_at = assert(template:find("@ID@", 1, true), "no @ID@ in the template")
  local member_at = assert(template:find("@MEMBER@", 1, true), "no @MEMBER@ in the template")
  assert(id_at < member_at, "the template's event id must come before its member")
  before_id = template:sub(1, id_at - 1)
  between = template:sub(id_at + 4, member_at - 1)
  after_member = template:sub(member_at + 8)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local parts = {}
  local n = 0
  if bulk > 1 then
    n = 1
    parts[1] = "["
  end
  for i = 1, bulk do
    counter = counter + 1
    if i > 1 then
      n = n + 1
      parts[n] = ","
    end
    parts[n + 1] = before_id
    parts[n + 2] = prefix .. counter
    parts[n + 3] = between
    parts[n + 4] = string.format("%06d", counter % members)
    parts[n + 5] = after_member
    n = n + 5
  end
  if bulk > 1 then
    n = n + 1
    parts[n] = "]"
  end
  return wrk.format(nil, nil, nil, table.concat(parts))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"errors_connect":%d,"errors_read":%d,' ..
      '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
      '"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
