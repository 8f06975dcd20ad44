-- For operators: the jobs of channel ARGV 2 at positions ARGV 3 to ARGV 3 + ARGV 4 - 1, in
-- channel order. Waiting is the waiting set, then the delayed jobs already due (the order the
-- next pops take them in), then the jobs held back by group limits. Read only. Returns {next position, or -1 when the channel ends in
-- this window; then id, envelope, lost leases, score, progress, kept result for each job}.
local refused = layout_refusal()
if refused then
  return refused
end
local channel, start, count = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])

local function ranks(key, first, n)
  return redis.call('ZRANGE', key, first, first + n - 1, 'WITHSCORES')
end

local function scored(key, min, max, first, n)
  return redis.call('ZRANGEBYSCORE', key, min, max, 'WITHSCORES', 'LIMIT', first, n)
end

local found
if channel == 'waiting' then
  local queued = redis.call('ZCARD', WAITING)
  found = {}
  if start < queued then
    found = ranks(WAITING, start, count)
  end
  local missing = count - #found / 2
  if missing > 0 then
    local due = scored(DELAYED, '-inf', int(NOW), math.max(start - queued, 0), missing)
    for _, value in ipairs(due) do
      found[#found + 1] = value
    end
  end
  missing = count - #found / 2
  if missing > 0 then -- then the jobs held back by group limits, in waiting order
    local before = queued + redis.call('ZCOUNT', DELAYED, '-inf', int(NOW))
    for _, value in ipairs(ranks(HELD, math.max(start - before, 0), missing)) do
      found[#found + 1] = value
    end
  end
elseif channel == 'delayed' then
  found = scored(DELAYED, '(' .. int(NOW), '+inf', start, count)
else
  local key = ({
    reserved = RESERVED, failed = FAILED, timeout = TIMEOUT, completed = COMPLETED,
  })[channel]
  found = ranks(key, start, count)
end

local reply = { -1 }
if #found / 2 == count then
  reply[1] = start + count
end
for i = 1, #found, 2 do
  local id = found[i]
  reply[#reply + 1] = id
  reply[#reply + 1] = redis.call('HGET', JOBS, id)
  reply[#reply + 1] = redis.call('HGET', EXPIRIES, id)
  reply[#reply + 1] = found[i + 1]
  reply[#reply + 1] = redis.call('HGET', RUNNING, 'p:' .. id)
  reply[#reply + 1] = redis.call('HGET', RESULTS, id)
end
return reply
