-- Extend leases to ARGV 3 ms from now. ARGV 4..: (id, token) pairs; a lease is extended only
-- if the job is reserved under that token. Returns the positions (0-based, in pair order) of
-- the jobs whose lease is lost.
local until_ms = int(NOW + tonumber(ARGV[3]))
local lost = {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  if holds(id, ARGV[i + 1]) and redis.call('ZSCORE', RESERVED, id) then
    redis.call('ZADD', RESERVED, 'XX', until_ms, id)
  else
    lost[#lost + 1] = (i - 4) / 2
  end
end
return lost
