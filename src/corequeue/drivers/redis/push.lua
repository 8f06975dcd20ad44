-- Push jobs, idempotent by id (see push_one). ARGV 2..: (id, delay in microseconds, envelope,
-- priority) quadruples. Returns how many jobs were stored.
local refused = layout_refusal()
if refused then
  return refused
end
local pushed, wake = 0, 0
for i = 2, #ARGV, 4 do
  local stored, wakes = push_one(ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3]))
  if stored then
    pushed = pushed + 1
    wake = math.max(wake, wakes)
  end
end
top_up_tokens(wake)
return pushed
