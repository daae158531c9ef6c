-- Shared by the console's wrk scripts (loaded with dofile): counts answers by status in every
-- thread, so that refusals (429, 403, 503) are never mistaken for throughput, and prints one
-- line of totals and latency percentiles (microseconds) at the end.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
function done(summary, latency, requests)
  local total, parts = {}, {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do total[status] = (total[status] or 0) + n end
  end
  for status, n in pairs(total) do table.insert(parts, status .. ":" .. n) end
  table.sort(parts)
  io.write(string.format("RESULT requests=%d seconds=%.1f rps=%.1f p50=%d p90=%d p99=%d p999=%d max=%d errors=%d statuses=%s\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(parts, ",")))
end
