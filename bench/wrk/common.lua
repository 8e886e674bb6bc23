-- Shared by the scenario scripts (loaded with dofile from their own directory).
-- setup() gives every wrk thread its own id (used to seed math.random and to make titles
-- unique); done() prints one machine-readable line that bench/load.sh parses:
--   BENCH requests=... rps=... p50_ms=... p99_ms=... non2xx=... ...
-- Percentiles come from wrk's own latency histogram (microseconds).

local next_tid = 1

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

function seed_random()
  -- os.time() has 1 s resolution; mix in the thread id so the two threads differ.
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
  math.random(); math.random()
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p75_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f non2xx=%d connect_err=%d read_err=%d write_err=%d timeout=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(75) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000,
    e.status, e.connect, e.read, e.write, e.timeout))
end
