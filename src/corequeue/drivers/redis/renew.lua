-- Extend leases to ARGV 2 microseconds from now. ARGV 3..: (id, token) pairs; a lease is
-- extended only if the job is reserved under that token. Returns the positions (0-based, in
-- pair order) of the jobs whose lease is lost. A fixed number of calls per batch.
local refused = layout_refusal()
if refused then
  return refused
end
local until_us = int(NOW + tonumber(ARGV[2]))
local ids, held = holding_pairs(3, false)
local leases, lost = {}, {}
for j, id in ipairs(ids) do
  if held[j] then
    leases[#leases + 1] = until_us
    leases[#leases + 1] = id
  else
    lost[#lost + 1] = j - 1
  end
end
call_sliced('ZADD', RESERVED, leases, 2)
return lost
