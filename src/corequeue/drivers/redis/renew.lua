-- Extend leases to ARGV 2 microseconds from now. ARGV 3..: (id, token) pairs; a lease is
-- extended only if the job is reserved under that token. Returns the positions (0-based, in
-- pair order) of the jobs whose lease is lost.
local refused = layout_refusal()
if refused then
  return refused
end
local until_us = int(NOW + tonumber(ARGV[2]))
local lost = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if holds(id, ARGV[i + 1]) and redis.call('ZSCORE', RESERVED, id) then
    redis.call('ZADD', RESERVED, 'XX', until_us, id)
  else
    lost[#lost + 1] = (i - 3) / 2
  end
end
return lost
