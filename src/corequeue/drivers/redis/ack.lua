-- Remove reserved jobs and their data. ARGV 2..: (id, token) pairs; a job is removed only if
-- it is reserved under that token. Returns the positions (0-based, in pair order) of the jobs
-- left alone: stale tokens, or jobs no longer reserved.
local refused = layout_refusal()
if refused then
  return refused
end
local acked, stale = {}, {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if holds(id, ARGV[i + 1]) and redis.call('ZREM', RESERVED, id) == 1 then
    acked[#acked + 1] = id
  else
    stale[#stale + 1] = (i - 2) / 2
  end
end
forget_all(acked)
return stale
