--[[
  Admits one more stream for a client (an IP or a token subject) across the cluster, or not.
  Each gateway keeps its own count in a field of one hash per client; a field whose gateway
  stopped refreshing it (crashed, partitioned) no longer counts and is removed.

  KEYS[1]  counts of one client (hash)   sse:streams:ip:<ip> | sse:streams:sub:<subject>
           field: gateway id, value: "<count>:<ms of last refresh>" (Redis clock)
  ARGV[1]  this gateway's id
  ARGV[2]  this gateway's count for the client, the new stream included
  ARGV[3]  the cluster-wide limit
  ARGV[4]  ms after which a field not refreshed is stale
  ARGV[5]  expiry of the hash in ms (refreshed by every write)

  Returns -1 when admitted (this gateway's field set to ARGV[2]); otherwise the number of
  streams the other gateways hold for the client (this gateway's field unchanged).
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local gateway = ARGV[1]
local count = tonumber(ARGV[2])
local stale = now - tonumber(ARGV[4])
local others = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if fields[i] ~= gateway then
    local n, at = string.match(fields[i + 1], '^(%d+):(%d+)$')
    if n and tonumber(at) >= stale then
      others = others + tonumber(n)
    else
      redis.call('HDEL', KEYS[1], fields[i])
    end
  end
end
if others + count > tonumber(ARGV[3]) then
  return others
end
redis.call('HSET', KEYS[1], gateway, string.format('%d:%d', count, now))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return -1
