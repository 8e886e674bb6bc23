-- GET one record by id; ids are picked uniformly at random from a file (one id a line).
-- usage: wrk ... -s get.lua http://127.0.0.1:PORT/api/collections/posts/records/ -- IDS_FILE
-- (the URL path must end with "/"; the id is appended to it)
dofile((debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "") .. "common.lua")

function init(args)
  ids = {}
  for line in io.lines(args[1]) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  if #ids == 0 then error("no ids in " .. tostring(args[1])) end
  prefix = wrk.path
  seed_random()
end

function request()
  return wrk.format("GET", prefix .. ids[math.random(#ids)])
end
