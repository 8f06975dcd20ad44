-- For operators: where job ARGV 2 is. Read only. Returns {channel, score, envelope, lost
-- leases, progress, kept result}, or nil when no channel holds it. A delayed job already due is waiting.
local refused = layout_refusal()
if refused then
  return refused
end
local id = ARGV[2]
local channels = {
  { 'waiting', WAITING }, { 'delayed', DELAYED }, { 'reserved', RESERVED },
  { 'failed', FAILED }, { 'timeout', TIMEOUT }, { 'waiting', HELD },
  { 'completed', COMPLETED },
}
for _, entry in ipairs(channels) do
  local score = redis.call('ZSCORE', entry[2], id)
  if score then
    local channel = entry[1]
    if channel == 'delayed' and tonumber(score) <= NOW then
      channel = 'waiting'
    end
    return {
      channel, score, redis.call('HGET', JOBS, id), redis.call('HGET', EXPIRIES, id),
      redis.call('HGET', RUNNING, 'p:' .. id), redis.call('HGET', RESULTS, id),
    }
  end
end
return nil
