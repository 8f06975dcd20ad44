-- Push jobs, idempotent by id. ARGV 3..: (id, delay ms, envelope) triples.
-- An id already waiting, delayed or reserved is left alone; one in failed or timeout is
-- replaced. Returns how many jobs were stored.
--
-- Every pending or parked job has its envelope key, so an id whose key does not exist yet is
-- new: SET NX stores it and it is scheduled at once (three calls). Only an id seen before
-- pays for the channel look-ups.
local pushed, wake = 0, 0
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local store = redis.call('SET', job_key(id), ARGV[i + 2], 'NX')
  if not store and not is_pending(id) then -- in failed or timeout: replaced
    redis.call('ZREM', FAILED, id)
    redis.call('ZREM', TIMEOUT, id)
    redis.call('HDEL', EXPIRIES, id)
    redis.call('SET', job_key(id), ARGV[i + 2])
    store = true
  end
  if store then
    wake = math.max(wake, schedule(id, tonumber(ARGV[i + 1])))
    pushed = pushed + 1
  end
end
top_up_tokens(wake)
return pushed
