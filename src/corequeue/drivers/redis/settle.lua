-- Move reserved job ARGV 3 to ARGV 4 ("failed" or "delayed", the latter for ARGV 5 ms),
-- storing envelope ARGV 6 ("" keeps the stored one). Returns 1 if the job was reserved.
local id, destination, envelope = ARGV[3], ARGV[4], ARGV[6]
if redis.call('ZREM', RESERVED, id) == 0 then
  return 0
end
if envelope ~= '' then
  redis.call('SET', job_key(id), envelope)
  redis.call('HDEL', EXPIRIES, id)
end
if destination == 'failed' then
  redis.call('ZADD', FAILED, int(NOW), id)
  return 1
end
top_up_tokens(schedule(id, tonumber(ARGV[5])))
return 1
