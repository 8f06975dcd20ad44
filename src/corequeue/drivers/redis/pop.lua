-- Reserve up to ARGV 2 due jobs under a lease of ARGV 3 microseconds, after recovering expired
-- leases and promoting due delayed jobs. Returns {wait, id, envelope, lost leases, id, ...}:
-- wait is 0 when the client should look again at once (jobs came back, or ids were parked),
-- else microseconds until the next job is due or lease runs out (-1: never). A popped id
-- whose envelope is missing is parked in failed (see park_lost) and comes back as
-- id, nil, why: the client logs it.
-- ARGV 4 is "1" when the pop's timer runs this script: a reservation then pushes to the
-- pop's wake-up list (KEYS 13), ending its BLPOP (before any token, so it takes no token).
-- ARGV 5 is the pop's reservation token, stored in `tokens` for every job it reserves: only
-- calls that bring it back may settle, renew or release those jobs.
local refused = layout_refusal()
if refused then
  return refused
end
recover_expired_leases()
promote_due_jobs()
local limit, lease, token = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[5]
local popped = redis.call('ZPOPMIN', WAITING, limit)
local ids = {}
for i = 1, #popped, 2 do
  ids[#ids + 1] = popped[i]
end
-- A fixed number of calls per batch: two reads, one ZADD and one HSET for the whole of it.
local envelopes, expiries = read_many('HMGET', JOBS, ids), read_many('HMGET', EXPIRIES, ids)
local reply, leases, holders, until_us = { 0 }, {}, {}, int(NOW + lease)
for j, id in ipairs(ids) do
  local envelope = envelopes[j]
  reply[#reply + 1] = id
  if envelope and not is_lost(envelope) then
    table.insert(leases, until_us)
    table.insert(leases, id)
    table.insert(holders, id)
    table.insert(holders, token)
    reply[#reply + 1] = envelope
    reply[#reply + 1] = expiries[j]
  else
    reply[#reply + 1] = false
    reply[#reply + 1] = park_lost(id, envelope and string.sub(envelope, #LOST + 1)
      or 'its envelope was missing when it was popped')
  end
end
call_sliced('ZADD', RESERVED, leases, 2)
call_sliced('HSET', TOKENS, holders, 2)
local reserved = #leases / 2
if reserved > 0 and ARGV[4] == '1' then
  redis.call('RPUSH', WAKE, '1')
  redis.call('PEXPIRE', WAKE, 60000) -- gone even if the BLPOP ended another way
end
if #reply > 1 then
  top_up_tokens(0)
  return reply
end
sync_tokens()
reply[1] = next_event_in_us()
return reply
