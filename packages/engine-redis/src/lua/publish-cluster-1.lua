--[[
  Redis Cluster variant of publish-3.lua: the same step, published with SPUBLISH (sharded
  pub/sub, Redis >= 7.0) on a channel that is one of the script's KEYS, so the script touches one
  slot only (a channel of another slot is refused with CROSSSLOT, as ElastiCache Serverless
  refuses undeclared channels even without Cluster).

  KEYS[1]  history stream            sse:{<topic>}:log
  KEYS[2]  topic metadata (hash)     sse:{<topic>}:meta   fields: epoch, last
  KEYS[3]  live shard channel        sse:{<topic>}:meta (the metadata key's name: see
                                     clusterChannel in redis-cluster-engine.ts)
  ARGV[1]  epoch to use if the topic has none yet
  ARGV[2]  unused (kept so the ARGV numbering matches publish-3.lua)
  ARGV[3]  event type
  ARGV[4]  data (JSON text)
  ARGV[5]  history length bound (exact: MAXLEN without ~)
  ARGV[6]  history age bound in ms (0: none)
  ARGV[7]  private fields (JSON text, see protocol's private-fields.ts), '' for none
  ARGV[8]  trace context of the publish (W3C traceparent), '' for none

  Returns {epoch, id}. The live message is "<id>\n<prev>\n<epoch>\n<event>\n<data>", where prev
  is the id stored before this one (0-0 for the first): readers use it to prove they saw every
  entry. With private fields the event line is "<event> <private>" (event names have no space,
  the private text no newline). With a trace context the epoch line is "<epoch> <traceparent>".
  Entries: fields e (event), d (data), p (previous id), v (private), t (traceparent).
]]
if redis.replicate_commands then pcall(redis.replicate_commands) end
local meta = redis.call('HMGET', KEYS[2], 'epoch', 'last')
local epoch = meta[1]
local prev = meta[2]
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[2], 'epoch', epoch)
end
if not prev then
  prev = '0-0'
  -- A reader may have created the metadata with an expiry; history makes it permanent.
  redis.call('PERSIST', KEYS[2])
end
-- XADD before SPUBLISH: a reader that resumes from history must find the event there.
local id
local eventLine = ARGV[3]
local epochLine = epoch
if ARGV[7] == '' and ARGV[8] == '' then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[5], '*',
    'e', ARGV[3], 'd', ARGV[4], 'p', prev)
else
  local fields = {'e', ARGV[3], 'd', ARGV[4], 'p', prev}
  if ARGV[7] ~= '' then
    fields[#fields + 1] = 'v'
    fields[#fields + 1] = ARGV[7]
    eventLine = ARGV[3] .. ' ' .. ARGV[7]
  end
  if ARGV[8] ~= '' then
    fields[#fields + 1] = 't'
    fields[#fields + 1] = ARGV[8]
    epochLine = epoch .. ' ' .. ARGV[8]
  end
  id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[5], '*', unpack(fields))
end
redis.call('HSET', KEYS[2], 'last', id)
-- Trim by age at most once a second per topic: on the first event of each second, from the
-- new id's time (Redis's clock, never before the previous id's). Exactly (MINID without ~):
-- what a second's trim removes is what aged out since the last one. Readers trim too (read-3.lua),
-- so a topic nobody publishes to still keeps nothing older than the bound.
local maxAge = tonumber(ARGV[6])
if maxAge > 0 then
  local ms = tonumber(string.match(id, '^%d+'))
  if math.floor(ms / 1000) ~= math.floor(tonumber(string.match(prev, '^%d+')) / 1000) then
    local minMs = ms - maxAge
    if minMs > 0 then
      redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-0', minMs))
    end
  end
end
redis.call('SPUBLISH', KEYS[3], id .. '\n' .. prev .. '\n' .. epochLine .. '\n' .. eventLine .. '\n' .. ARGV[4])
return {epoch, id}
