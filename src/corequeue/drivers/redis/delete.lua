-- For operators: delete job ARGV 3 with its data if it is waiting, delayed, failed or timeout;
-- a reserved job is left alone (a worker holds it). Returns 1 if it was there.
local id = ARGV[3]
for _, key in ipairs({ WAITING, DELAYED, FAILED, TIMEOUT }) do
  if redis.call('ZREM', key, id) == 1 then
    forget(id)
    return 1
  end
end
return 0
