-- Reserve up to ARGV 3 due jobs under a lease of ARGV 4 ms, after recovering expired leases
-- and promoting due delayed jobs. Returns {wait, id, envelope, lost leases, id, ...}: wait is
-- 0 when jobs came back, else microseconds until the next job is due or lease runs out
-- (-1: never).
-- ARGV 5, when not "", is the wake-up list of the pop whose timer runs this script: a
-- reservation pushes to it, ending that pop's BLPOP (before any token, so it takes no token).
-- ARGV 6 is the pop's reservation token, stored in `tokens` for every job it reserves: only
-- calls that bring it back may settle, renew or release those jobs.
recover_expired_leases()
promote_due_jobs()
local limit, lease, token = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[6]
local popped = redis.call('ZPOPMIN', WAITING, limit)
local reply = { 0 }
for i = 1, #popped, 2 do
  local id = popped[i]
  local envelope = redis.call('GET', job_key(id))
  if envelope then
    redis.call('ZADD', RESERVED, int(NOW + lease), id)
    redis.call('HSET', TOKENS, id, token)
    reply[#reply + 1] = id
    reply[#reply + 1] = envelope
    reply[#reply + 1] = redis.call('HGET', EXPIRIES, id)
  end
end
if #reply > 1 then
  if ARGV[5] ~= '' then
    redis.call('RPUSH', ARGV[5], '1')
    redis.call('PEXPIRE', ARGV[5], 60000) -- gone even if the BLPOP ended another way
  end
  top_up_tokens(0)
  return reply
end
sync_tokens()
reply[1] = next_event_in_us()
return reply
