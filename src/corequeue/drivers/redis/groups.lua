-- For operators: how many jobs of each group wait and how many are reserved. Read only.
-- Returns {group, waiting, reserved, ...}. Held jobs count as waiting, delayed ones already due
-- too. It reads every grouped job's place: O(grouped jobs), for the dashboard only.
local refused = layout_refusal()
if refused then
  return refused
end
local counts, order = {}, {}
local entries = redis.call('HGETALL', GROUPS)
for i = 1, #entries, 2 do
  local id, group = entries[i], entries[i + 1]
  local where = nil
  if redis.call('ZSCORE', RESERVED, id) then
    where = 2
  elseif redis.call('ZSCORE', WAITING, id) or redis.call('ZSCORE', HELD, id) then
    where = 1
  else
    local due = redis.call('ZSCORE', DELAYED, id)
    if due and tonumber(due) <= NOW then
      where = 1
    end
  end
  if where then
    if not counts[group] then
      counts[group] = { 0, 0 }
      table.insert(order, group)
    end
    counts[group][where] = counts[group][where] + 1
  end
end
local reply = {}
for _, group in ipairs(order) do
  table.insert(reply, group)
  table.insert(reply, counts[group][1])
  table.insert(reply, counts[group][2])
end
return reply
