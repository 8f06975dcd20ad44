-- Extend leases to ARGV 2 microseconds from now. ARGV 3 is a count n of (position, fraction,
-- message) progress triples that follow (position: of the job's pair, 0-based); then (id, token) pairs: a lease is extended (and the
-- job's progress stored) only if the job is reserved under that token. Returns two lists of
-- positions (0-based, in pair order): the jobs whose lease is lost, and the jobs held whose
-- reservation a cancel() asked to stop. A fixed number of calls per batch.
local refused = layout_refusal()
if refused then
  return refused
end
local until_us = int(NOW + tonumber(ARGV[2]))
local progress_count = tonumber(ARGV[3])
local ids, held = holding_pairs(4 + 3 * progress_count, false)
local leases, lost, cancelled = {}, {}, {}
for j, id in ipairs(ids) do
  if held[j] then
    leases[#leases + 1] = until_us
    leases[#leases + 1] = id
  else
    lost[#lost + 1] = j - 1
  end
end
call_sliced('ZADD', RESERVED, leases, 2)
if redis.call('EXISTS', RUNNING) == 1 then
  local fields = {}
  for j, id in ipairs(ids) do
    fields[j] = 'c:' .. id
  end
  local requests = read_many('HMGET', RUNNING, fields)
  for j, id in ipairs(ids) do
    if held[j] and requests[j] == ARGV[4 + 3 * progress_count + 2 * (j - 1) + 1] then
      cancelled[#cancelled + 1] = j - 1
    end
  end
end
if progress_count > 0 then
  local kept = {}
  for i = 4, 3 + 3 * progress_count, 3 do
    local j = tonumber(ARGV[i]) + 1
    if held[j] then
      kept[#kept + 1] = 'p:' .. ids[j]
      kept[#kept + 1] = ARGV[i + 1] .. ' ' .. ARGV[i + 2]
    end
  end
  call_sliced('HSET', RUNNING, kept, 2)
end
return { lost, cancelled }
