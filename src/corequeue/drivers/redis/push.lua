-- Push jobs, idempotent by id. ARGV 3..: (id, delay ms, envelope) triples.
-- An id already waiting, delayed or reserved is left alone; one in failed or timeout is
-- replaced. Returns how many jobs were stored.
local pushed, wake = 0, 0
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  if not is_pending(id) then
    redis.call('ZREM', FAILED, id)
    redis.call('ZREM', TIMEOUT, id)
    redis.call('HDEL', EXPIRIES, id)
    redis.call('SET', job_key(id), ARGV[i + 2])
    wake = math.max(wake, schedule(id, tonumber(ARGV[i + 1])))
    pushed = pushed + 1
  end
end
top_up_tokens(wake)
return pushed
