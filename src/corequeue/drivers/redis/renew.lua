-- Extend the leases of reserved jobs (ARGV 4..: ids) to ARGV 3 ms from now.
local until_ms = int(NOW + tonumber(ARGV[3]))
local renewed = 0
for i = 4, #ARGV do
  renewed = renewed + redis.call('ZADD', RESERVED, 'XX', 'CH', until_ms, ARGV[i])
end
return renewed
