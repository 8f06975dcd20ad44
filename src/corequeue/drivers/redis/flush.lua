-- Delete up to BATCH jobs of channel ARGV 2 with their data (and reservation tokens). Waiting
-- includes delayed jobs already due; delayed only those not yet due. Returns how many went;
-- the client calls again until that is 0.
local refused = layout_refusal()
if refused then
  return refused
end

local function select_ids(channel)
  if channel == 'waiting' then
    local ids = redis.call('ZRANGE', WAITING, 0, BATCH - 1)
    if #ids > 0 then
      return WAITING, ids
    end
    ids = redis.call('ZRANGE', HELD, 0, BATCH - 1)
    if #ids > 0 then
      for _, id in ipairs(ids) do
        unhold(id)
      end
      return nil, ids
    end
    return DELAYED, redis.call('ZRANGEBYSCORE', DELAYED, '-inf', int(NOW), 'LIMIT', 0, BATCH)
  end
  if channel == 'delayed' then
    return DELAYED, redis.call('ZRANGEBYSCORE', DELAYED, '(' .. int(NOW), '+inf', 'LIMIT', 0, BATCH)
  end
  local key = ({
    reserved = RESERVED, failed = FAILED, timeout = TIMEOUT, completed = COMPLETED,
  })[channel]
  return key, redis.call('ZRANGE', key, 0, BATCH - 1)
end

local key, ids = select_ids(ARGV[2])
if #ids > 0 then
  if key then
    redis.call('ZREM', key, unpack(ids))
  end
  forget_all(ids)
end
return #ids
