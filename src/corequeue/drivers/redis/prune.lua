-- Delete up to ARGV 2 finished jobs past their retention, oldest first: completed ones whose
-- score (when the result expires) is not after NOW, failed and timeout ones parked ARGV 3
-- microseconds ago or earlier ("" keeps them). Returns how many went.
--
-- Then looks at up to ARGV 2 more entries of `rates` and deletes those whose next start passed
-- ARGV 4 microseconds ago or more: a scope that old restarts from now anyway (see pop.lua's
-- turn), so one entry per group ever rate-limited does not stay for good. The scan goes on
-- from where the previous call stopped (its cursor is kept in `rates` under '#', which is no
-- scope: those are '' and 'g:<group>').
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

local CURSOR = '#'
local horizon = tonumber(ARGV[4])
if horizon and redis.call('EXISTS', RATES) == 1 then
  local cursor = redis.call('HGET', RATES, CURSOR) or '0'
  local scanned = redis.call('HSCAN', RATES, cursor, 'COUNT', limit)
  local stale = {}
  local entries = scanned[2]
  for i = 1, #entries, 2 do
    local at = tonumber(entries[i + 1])
    if entries[i] ~= CURSOR and at and at < NOW - horizon then
      stale[#stale + 1] = entries[i]
    end
  end
  call_sliced('HDEL', RATES, stale, 1)
  if scanned[1] == '0' then
    redis.call('HDEL', RATES, CURSOR)
  else
    redis.call('HSET', RATES, CURSOR, scanned[1])
  end
end
return #ids
