-- Move reserved job ARGV 2 to ARGV 3 ("failed" or "delayed", the latter for ARGV 4
-- microseconds), storing envelope ARGV 5 ("" keeps the stored one), if it is reserved under
-- token ARGV 6. Returns 1 if it moved, 0 (nothing changed) if not.
local refused = layout_refusal()
if refused then
  return refused
end
local id, destination, envelope = ARGV[2], ARGV[3], ARGV[5]
if not unreserve(id, ARGV[6]) then
  return 0
end
if envelope ~= '' then
  redis.call('HSET', JOBS, id, envelope)
  redis.call('HDEL', EXPIRIES, id)
end
if destination == 'failed' then
  redis.call('ZADD', FAILED, int(NOW), id)
  announce_finished()
  return 1
end
top_up_tokens(schedule(id, tonumber(ARGV[4])))
return 1
