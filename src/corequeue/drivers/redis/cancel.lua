-- Remove job ARGV 2 if it is waiting or delayed, or record a cancel request for its current
-- reservation if it is reserved (its holder sees it at its next renewal). Returns 1 if either.
local refused = layout_refusal()
if refused then
  return refused
end
local id = ARGV[2]
if redis.call('ZREM', WAITING, id) == 1 or redis.call('ZREM', DELAYED, id) == 1
  or unhold(id) then
  forget(id)
  return 1
end
local token = redis.call('HGET', TOKENS, id)
if token and redis.call('ZSCORE', RESERVED, id) then
  redis.call('HSET', RUNNING, 'c:' .. id, token)
  return 1
end
return 0
