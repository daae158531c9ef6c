-- wrk script: GET with the headers given on the command line at a fixed rate. RATE requests
-- per second in all, spread over THREADS wrk threads (the same number as wrk's -t): each
-- thread sends its next request at its next slot on a fixed schedule, whatever the answers'
-- latency, so the offered load does not fall when the server slows down (Debian's wrk has no
-- fixed-rate mode). A thread that falls behind catches up at once, up to one second of
-- backlog. A connection waits for its answer before it sends again, so -c must leave room:
-- the rate is only offered while fewer than -c requests are outstanding. RATE unset or 0: as
-- fast as the connections go.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } paced_timespec;
  int clock_gettime(int clock, paced_timespec* now);
]]
local CLOCK_MONOTONIC = 1
local now = ffi.new("paced_timespec")
local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now)
  return tonumber(now.tv_sec) * 1000 + tonumber(now.tv_nsec) / 1e6
end

local rate = tonumber(os.getenv("RATE") or "0")
local threads = tonumber(os.getenv("THREADS") or "1")
if rate > 0 then
  local interval = threads * 1000 / rate
  local next_at = nil
  function delay()
    local t = now_ms()
    if next_at == nil or next_at < t - 1000 then next_at = t end
    local wait = next_at - t
    next_at = next_at + interval
    return wait > 0 and math.floor(wait) or 0
  end
end
