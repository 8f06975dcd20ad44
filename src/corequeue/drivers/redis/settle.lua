-- Move reserved job ARGV 3 to ARGV 4 ("failed" or "delayed", the latter for ARGV 5 ms),
-- storing envelope ARGV 6 ("" keeps the stored one), if it is reserved under token ARGV 7.
-- Returns 1 if it moved, 0 (nothing changed) if not.
local id, destination, envelope = ARGV[3], ARGV[4], ARGV[6]
if not unreserve(id, ARGV[7]) then
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
