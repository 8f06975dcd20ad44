-- Push jobs, idempotent by id (see store_envelope). ARGV 2..: (id, delay in microseconds,
-- envelope) triples. Returns how many jobs were stored. Besides one HSETNX per new job, a fixed
-- number of calls per batch: the jobs due now join waiting in one ZADD, the others delayed in
-- another. An id given twice is stored once, from its first triple.
local refused = layout_refusal()
if refused then
  return refused
end
local stored, waiting, delayed = {}, {}, {}
local pushed = 0
for i = 2, #ARGV, 3 do
  local id, delay = ARGV[i], tonumber(ARGV[i + 1])
  if not stored[id] and store_envelope(id, ARGV[i + 2]) then
    stored[id] = true
    pushed = pushed + 1
    if delay <= 0 then
      table.insert(waiting, id)
    else
      table.insert(delayed, int(NOW + delay))
      table.insert(delayed, id)
    end
  end
end
make_all_waiting(waiting)
call_sliced('ZADD', DELAYED, delayed, 2)
-- Blocked pops wait for the first delayed job: wake them when it is one of these.
local wake = 0
if #delayed > 0 and stored[redis.call('ZRANGE', DELAYED, 0, 0)[1]] then
  wake = 1
end
top_up_tokens(wake)
return pushed
