-- wrk script: every request gets a query string never used before, so every
-- request is a cache miss (or, with WARM_N set, walks objects 1..WARM_N once
-- per cycle so that each is fetched and stored). Prefix keeps runs apart.
-- `counter` is global so done() can read how far each thread got.
local prefix = os.getenv("UNIQ_PREFIX") or "u"
local path = os.getenv("UNIQ_PATH") or "/assets/1k.bin"
local start = tonumber(os.getenv("UNIQ_START") or "0")
local warm_n = tonumber(os.getenv("WARM_N") or "0")
counter = start
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local i = counter
  if warm_n > 0 then i = ((counter - 1) % warm_n) + 1 end
  return wrk.format("GET", path .. "?" .. prefix .. "=" .. i)
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("uniq_counter %d\n", t:get("counter")))
  end
end
