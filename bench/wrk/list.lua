-- Filtered list: the URL (with its URL-encoded query string) is requested as given, e.g.
-- usage: wrk ... -s list.lua 'http://127.0.0.1:PORT/api/collections/posts/records?filter=views%3E500&per_page=50'
dofile((debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "") .. "common.lua")
