-- For operators: move job ARGV 2 from failed or timeout back to waiting, keeping its envelope
-- (a reload of one job). Returns 1 if it moved; 0 if it was in neither, or its envelope is
-- lost (see park_lost: it could only be parked again).
local refused = layout_refusal()
if refused then
  return refused
end
local id = ARGV[2]
local envelope = redis.call('HGET', JOBS, id)
if not envelope or is_lost(envelope) then
  return 0
end
if redis.call('ZREM', FAILED, id) == 1 or redis.call('ZREM', TIMEOUT, id) == 1 then
  make_waiting(id)
  top_up_tokens(0)
  return 1
end
return 0
