-- For operators: delete job ARGV 2 with its data if it is waiting, delayed, failed, timeout or
-- completed;
-- a reserved job is left alone (a worker holds it). Returns 1 if it was there.
local refused = layout_refusal()
if refused then
  return refused
end
local id = ARGV[2]
for _, key in ipairs({ WAITING, DELAYED, FAILED, TIMEOUT, COMPLETED }) do
  if redis.call('ZREM', key, id) == 1 then
    forget(id)
    return 1
  end
end
if unhold(id) then
  forget(id)
  return 1
end
return 0
