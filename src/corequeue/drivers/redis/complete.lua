-- Ack reserved jobs that keep their result. ARGV 2..: (id, token, keep in microseconds,
-- envelope with the result) quadruples; a job held under its token moves to completed until
-- NOW + keep, its envelope replaced. Returns the positions (0-based, in quadruple order) of
-- the jobs left alone: stale tokens, or jobs no longer reserved.
local refused = layout_refusal()
if refused then
  return refused
end
local stale = {}
for i = 2, #ARGV, 4 do
  local id = ARGV[i]
  if unreserve(id, ARGV[i + 1]) then
    redis.call('HSET', JOBS, id, ARGV[i + 3])
    redis.call('HDEL', EXPIRIES, id)
    redis.call('ZADD', COMPLETED, int(NOW + tonumber(ARGV[i + 2])), id)
  else
    stale[#stale + 1] = (i - 2) / 4
  end
end
if #stale < (#ARGV - 1) / 4 then
  announce_finished()
end
return stale
