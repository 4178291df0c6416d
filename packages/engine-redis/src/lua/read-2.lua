--[[
  Reads a topic's history state and the entries after a position, in one consistent snapshot.

  KEYS[1]  history stream            sse:{<topic>}:log
  KEYS[2]  topic metadata (hash)     sse:{<topic>}:meta   fields: epoch, last
  ARGV[1]  epoch to create if the topic has none yet
  ARGV[2]  read entries after this id (exclusive); '' reads the head only
  ARGV[3]  at most this many entries
  ARGV[4]  expiry in seconds of metadata created here (a topic nobody publishes to leaves
           nothing behind)

  Returns {epoch, last, entries}: last is the newest id ever stored in this epoch ('0-0' if
  none); entries as XRANGE returns them, fields e (event), d (data), p (previous id).
]]
local meta = redis.call('HMGET', KEYS[2], 'epoch', 'last')
local epoch = meta[1]
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[2], 'epoch', epoch)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
local last = meta[2] or '0-0'
local entries = {}
if ARGV[2] ~= '' then
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[2], '+', 'COUNT', ARGV[3])
end
return {epoch, last, entries}
