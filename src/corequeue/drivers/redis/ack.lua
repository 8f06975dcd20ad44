-- Remove reserved jobs and their data. ARGV 2..: (id, token) pairs; a job is removed only if
-- it is reserved under that token. Returns the positions (0-based, in pair order) of the jobs
-- left alone: stale tokens, or jobs no longer reserved. A fixed number of calls per batch.
local refused = layout_refusal()
if refused then
  return refused
end
local ids, held = holding_pairs(2, true)
local acked, stale = {}, {}
for j, id in ipairs(ids) do
  if held[j] then
    acked[#acked + 1] = id
  else
    stale[#stale + 1] = j - 1
  end
end
call_sliced('ZREM', RESERVED, acked, 1)
forget_all(acked)
return stale
