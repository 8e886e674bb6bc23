-- Insert one record per request: POST JSON with a unique title, random views and status.
-- usage: wrk ... -s insert.lua http://127.0.0.1:PORT/api/collections/posts/records
dofile((debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "") .. "common.lua")

local statuses = { "draft", "live" }

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  seed_random()
  n = 0
end

function request()
  n = n + 1
  local body = string.format('{"title":"wrk t%d n%d r%d","views":%d,"status":"%s"}',
    tid or 0, n, math.random(1, 999999999), math.random(0, 1000), statuses[math.random(2)])
  return wrk.format(nil, nil, nil, body)
end
