-- Move up to BATCH jobs of ARGV 2 ("failed" or "timeout") back to waiting, oldest first,
-- from position ARGV 3 of that channel. A job whose envelope is lost (see park_lost) stays
-- where it is: it could only be parked again. Returns {moved, kept}; the client calls again
-- from position + kept until both are 0, so kept jobs are passed over, not read again.
local refused = layout_refusal()
if refused then
  return refused
end
local source = FAILED
if ARGV[2] == 'timeout' then
  source = TIMEOUT
end
local from = tonumber(ARGV[3])
local ids = redis.call('ZRANGE', source, from, from + BATCH - 1)
local envelopes = read_many('HMGET', JOBS, ids)
local moved = {}
for j, id in ipairs(ids) do
  if envelopes[j] and not is_lost(envelopes[j]) then
    table.insert(moved, id)
  end
end
call_sliced('ZREM', source, moved, 1)
make_all_waiting(moved)
top_up_tokens(0)
return { #moved, #ids - #moved }
