--[[
  Records this gateway's stream count for a client (after a stream closed, and periodically,
  which keeps the field fresh and the hash from expiring while streams are open).

  KEYS[1]  counts of one client (hash), as in streams-acquire-1.lua
  ARGV[1]  this gateway's id
  ARGV[2]  this gateway's count for the client (0 removes the field)
  ARGV[3]  expiry of the hash in ms

  Returns the number of fields left in the hash.
]]
if tonumber(ARGV[2]) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return redis.call('HLEN', KEYS[1])
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d:%d', tonumber(ARGV[2]), now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('HLEN', KEYS[1])
