-- Push jobs, idempotent by id. ARGV 2..: (id, delay in microseconds, envelope) triples.
-- An id already waiting, delayed or reserved is left alone; one in failed or timeout is
-- replaced. Returns how many jobs were stored.
--
-- Every pending or parked job has its field in `jobs`, so an id without one is new: HSETNX
-- stores it and it is scheduled at once (three calls). Only an id seen before pays for the
-- channel look-ups.
local refused = layout_refusal()
if refused then
  return refused
end
local pushed, wake = 0, 0
for i = 2, #ARGV, 3 do
  local id = ARGV[i]
  local store = redis.call('HSETNX', JOBS, id, ARGV[i + 2]) == 1
  if not store and not is_pending(id) then -- in failed or timeout: replaced
    redis.call('ZREM', FAILED, id)
    redis.call('ZREM', TIMEOUT, id)
    redis.call('HDEL', EXPIRIES, id)
    redis.call('HSET', JOBS, id, ARGV[i + 2])
    store = true
  end
  if store then
    wake = math.max(wake, schedule(id, tonumber(ARGV[i + 1])))
    pushed = pushed + 1
  end
end
top_up_tokens(wake)
return pushed
