-- wrk script: GET with the headers given on the command line; each connection waits
-- PACE_MS between its requests, so that C connections offer about C * 1000 / PACE_MS
-- requests per second (Debian's wrk has no fixed-rate mode). PACE_MS=0: as fast as it can.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local pace = tonumber(os.getenv("PACE_MS") or "0")
if pace > 0 then
  function delay() return pace end
end
