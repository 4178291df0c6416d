--[[
  Reads a topic's history state and the entries after a position, in one consistent snapshot,
  with history first held to its bounds: what a reader can get is exactly the newest
  HISTORY_MAX_LEN entries no older than HISTORY_MAX_AGE_S, however long ago the topic's last
  publish trimmed it (as the memory engine does).

  KEYS[1]  history stream            sse:{<topic>}:log
  KEYS[2]  topic metadata (hash)     sse:{<topic>}:meta   fields: epoch, last
  ARGV[1]  epoch to create if the topic has none yet
  ARGV[2]  read entries after this id (exclusive); '' reads the head only
  ARGV[3]  at most this many entries
  ARGV[4]  expiry in seconds of metadata created here (a topic nobody publishes to leaves
           nothing behind)
  ARGV[5]  history length bound
  ARGV[6]  history age bound in ms (0: none)

  Returns {epoch, last, entries}: last is the newest id ever stored in this epoch ('0-0' if
  none); entries as XRANGE returns them, fields e (event), d (data), p (previous id).
]]
if redis.replicate_commands then pcall(redis.replicate_commands) end
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
  -- Publishes trim exactly, but a lower HISTORY_MAX_LEN since, or history written before
  -- trimming was exact, may hold more; and nothing trims by age a topic nobody publishes to.
  if redis.call('XLEN', KEYS[1]) > tonumber(ARGV[5]) then
    redis.call('XTRIM', KEYS[1], 'MAXLEN', ARGV[5])
  end
  local maxAge = tonumber(ARGV[6])
  if maxAge > 0 then
    local now = redis.call('TIME')
    local minMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - maxAge
    if minMs > 0 then redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-0', minMs)) end
  end
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[2], '+', 'COUNT', ARGV[3])
end
return {epoch, last, entries}
