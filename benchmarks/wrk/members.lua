-- wrk script of the serving benchmark: every request asks about a member drawn at random (ids M0000001..,
-- as the generator numbers them) and carries the API key; done() prints the figures as one JSON line.
-- Arguments (after --): <path with %s for the member id> <number of members> [API key]

local thread_number = 0

function setup(thread)
  thread_number = thread_number + 1
  thread:set("seed", thread_number)
end

function init(args)
  path = args[1]
  members = tonumber(args[2])
  math.randomseed(1000 + (seed or 0))
  if args[3] ~= nil and args[3] ~= "" then
    wrk.headers["X-API-Key"] = args[3]
  end
end

function request()
  return wrk.format("GET", string.format(path, string.format("M%07d", math.random(1, members))))
end

function done(summary, latency, requests)
  local e = summary.errors
  local cdf = {}
  for _, p in ipairs({1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.9, 99.99}) do
    cdf[#cdf + 1] = string.format("[%s,%d]", tostring(p), latency:percentile(p))
  end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,"p50":%d,"p90":%d,"p99":%d},"cdf":[%s]}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    table.concat(cdf, ",")))
end
