-- Remove reserved jobs (ARGV 3..: ids) and their data. Returns how many were reserved.
local acked = 0
for i = 3, #ARGV do
  if redis.call('ZREM', RESERVED, ARGV[i]) == 1 then
    forget(ARGV[i])
    acked = acked + 1
  end
end
return acked
