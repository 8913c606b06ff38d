-- Paced load for `run.py --soak`: the requests of post.lua sent at a fixed rate (args after `--`: body file,
-- rate in requests/s, wrk threads). Each thread hands out send slots 1/rate apart; a connection waits for its
-- slot, so the offered rate stays fixed while the server keeps up. Every response's status is counted;
-- done() adds `SOAK_STATUS {"200": n, ...}` to post.lua's BENCH_JSON line.

local script_dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(script_dir .. "post.lua")
local post_init, post_done = init, done

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } soak_timespec;
  int clock_gettime(int clock_id, soak_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("soak_timespec")
local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local interval_ms = nil
local next_slot = nil
statuses = {} -- global: done() reads each thread's table through thread:get

function init(args)
  post_init(args)
  local rate, threads = tonumber(args[2]), tonumber(args[3] or "1")
  if rate == nil or rate <= 0 then error("soak.lua: pass a positive rate after the body file") end
  interval_ms = 1000.0 * threads / rate
end

function delay()
  local now = now_ms()
  -- A server that fell behind gets at most one second of backlog, not an unbounded burst.
  if next_slot == nil or next_slot < now - 1000 then next_slot = now end
  local slot = next_slot
  next_slot = next_slot + interval_ms
  return math.max(0, slot - now)
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  post_done(summary, latency, requests)
  local totals, parts = {}, {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses") or {}) do
      totals[status] = (totals[status] or 0) + count
    end
  end
  for status, count in pairs(totals) do parts[#parts + 1] = string.format('"%s": %d', status, count) end
  io.write("SOAK_STATUS {" .. table.concat(parts, ", ") .. "}\n")
end
