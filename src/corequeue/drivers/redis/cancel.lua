-- Remove job ARGV 2 if it is waiting or delayed. Returns 1 if it was.
local refused = layout_refusal()
if refused then
  return refused
end
local id = ARGV[2]
if redis.call('ZREM', WAITING, id) == 1 or redis.call('ZREM', DELAYED, id) == 1
  or unhold(id) then
  forget(id)
  return 1
end
return 0
