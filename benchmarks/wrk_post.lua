-- wrk script shared by every system: POST one fixed body, stop after a fixed number of responses,
-- count non-200 answers, print one JSON line with throughput inputs and latency percentiles (us).
-- Configured through the environment: BENCH_BODY_FILE, BENCH_CONTENT_TYPE, BENCH_HEADER_LENGTH
-- (Inference-Header-Content-Length for binary tensors, optional), BENCH_REQUESTS.
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
local header_length = os.getenv("BENCH_HEADER_LENGTH")
if header_length and header_length ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = header_length
end
local limit = tonumber(os.getenv("BENCH_REQUESTS") or "1000")
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local function now_us()
  local ts = ffi.new("bench_timespec")
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end
local started_us = nil
local done_count = 0
local bad = 0

function init(args)
  started_us = now_us()
end

function response(status, headers, body)
  done_count = done_count + 1
  if status ~= 200 then
    bad = bad + 1
    if bad <= 3 then io.stderr:write("non-200 " .. status .. ": " .. string.sub(body or "", 1, 300) .. "\n") end
  end
  if done_count == limit then
    -- The time to `limit` answers, measured here: wrk's own duration runs until its main thread
    -- wakes up, which the SIGINT below causes (system() blocks SIGINT, hence the background kill).
    io.write(string.format('{"elapsed_us": %.1f, "answered": %d}\n', now_us() - started_us, done_count))
    io.flush()
    wrk.thread:stop()
    os.execute("(sleep 0.01; kill -INT $PPID) &")
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
    '"status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
