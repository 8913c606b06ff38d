-- Single-row JSON POSTs for bench/serving/run.py. The request bodies (one per line) come from the file named
-- after `--`; they are turned into complete requests once, in init(), so wrk spends no time building them.
-- done() prints the run's numbers as one line, `BENCH_JSON {...}`, which run.py parses.

local prepared = {}
local next_index = 0

-- A file whose first line is `#raw` holds whole requests instead, hex-encoded, one per line (bench/serving/mixed.py):
-- sent as they are, whatever they hold. One whose first line is `#binary` holds Open Inference Protocol binary
-- bodies (bench/serving/wire.py): per line the JSON header's length, a space, the body hex-encoded; each is sent
-- as tritonclient.http sends it, with `Inference-Header-Content-Length` and no Content-Type.

local function unhex(line)
  return (line:gsub("%x%x", function(pair) return string.char(tonumber(pair, 16)) end))
end

function init(args)
  local path = args[1]
  if path == nil then error("post.lua: pass the request-body file after --") end
  local headers = { ["Content-Type"] = "application/json" }
  local kind = nil
  for line in io.lines(path) do
    if kind == nil then kind = (line == "#raw" or line == "#binary") and line or "#json" end
    if #line == 0 or line == kind then
      -- the marker line, or an empty one
    elseif kind == "#raw" then prepared[#prepared + 1] = unhex(line)
    elseif kind == "#binary" then
      local length, hexed = line:match("^(%d+) (%x+)$")
      if length == nil then error("post.lua: a #binary line is `LENGTH HEX`, got " .. line:sub(1, 40)) end
      prepared[#prepared + 1] = wrk.format("POST", nil, { ["Inference-Header-Content-Length"] = length }, unhex(hexed))
    else prepared[#prepared + 1] = wrk.format("POST", nil, headers, line) end
  end
  if #prepared == 0 then error("post.lua: no request bodies in " .. path) end
end

function request()
  next_index = next_index % #prepared + 1
  return prepared[next_index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %.1f, "mean": %.1f, "stdev": %.1f, "max": %.1f, ' ..
    '"p50": %.1f, "p90": %.1f, "p99": %.1f, "p999": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
