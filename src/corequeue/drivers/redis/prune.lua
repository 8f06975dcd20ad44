-- Delete up to ARGV 2 finished jobs past their retention, oldest first: completed ones whose
-- score (when the result expires) is not after NOW, failed and timeout ones parked ARGV 3
-- microseconds ago or earlier ("" keeps them). Returns how many went.
local refused = layout_refusal()
if refused then
  return refused
end
local limit = tonumber(ARGV[2])
local retention = tonumber(ARGV[3])
local found = {}
local function collect(key, max)
  local entries = redis.call(
    'ZRANGEBYSCORE', key, '-inf', int(max), 'WITHSCORES', 'LIMIT', 0, limit
  )
  for i = 1, #entries, 2 do
    found[#found + 1] = { tonumber(entries[i + 1]), entries[i], key }
  end
end
collect(COMPLETED, NOW)
if retention then
  collect(FAILED, NOW - retention)
  collect(TIMEOUT, NOW - retention)
end
table.sort(found, function(a, b) return a[1] < b[1] end)
local ids = {}
for i = 1, math.min(limit, #found) do
  local entry = found[i]
  redis.call('ZREM', entry[3], entry[2])
  ids[#ids + 1] = entry[2]
end
if #ids > 0 then
  forget_all(ids)
end
return #ids
