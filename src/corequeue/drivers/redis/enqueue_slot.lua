-- Periodic jobs: enqueue the job of one slot of a schedule, exactly once, in one script.
-- ARGV 2 the schedule's name, 3 the slot in milliseconds since the epoch, 4 the slot job's id,
--      5 its envelope, 6 its priority, 7 its group ("" for none).
-- If the slot is not in the future (slot * 1000 <= NOW, in microseconds: never early) and
-- the schedule's last slot in `periodic` is absent or earlier, store the slot as its last slot
-- and push the job due at once (push_one: an id already pending is left as it is, one in
-- failed or timeout is replaced; the slot advances either way). Otherwise change nothing.
-- Returns 1 when the slot advanced, else 0.
local refused = layout_refusal()
if refused then
  return refused
end
local name, slot = ARGV[2], tonumber(ARGV[3])
if slot * 1000 > NOW then
  return 0
end
local last = tonumber(redis.call('HGET', PERIODIC, name))
if last and last >= slot then
  return 0
end
redis.call('HSET', PERIODIC, name, ARGV[3])
push_one(ARGV[4], 0, ARGV[5], tonumber(ARGV[6]), ARGV[7])
top_up_tokens(0)
return 1
