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
-- ARGV 6..11 are the popping worker's limits, "" when not set: concurrency, group
-- concurrency, the intervals in microseconds between two starts of the queue's rate and of
-- each group's rate, and how far ahead of its turn a start of each may come (Rate.ahead_us). Under limits, reply[1] is {wait, held by concurrency, by group
-- concurrency, by rate, by group rate} instead of wait.
local HOLD_POLL_US = 20000
local SCAN = 100 -- waiting jobs read per look while choosing

-- The next allowed start of rate scope `scope` (NOW when none is stored).
local function next_start(scope)
  return tonumber(redis.call('HGET', RATES, scope)) or NOW
end

-- When the next start of a rate scope is scheduled, seen now: the stored instant, unless it
-- passed more than an interval ago (as corequeue.drivers.flow.turn).
local function turn(scope, interval)
  local at = next_start(scope)
  if NOW - at >= interval then
    return NOW
  end
  return at
end

-- Whether a start of the scope may happen now: its turn is at most `ahead` µs away.
local function is_due(scope, interval, ahead)
  return turn(scope, interval) <= NOW + ahead
end

local function advance(scope, interval)
  redis.call('HSET', RATES, scope, int(turn(scope, interval) + interval))
end

-- Reserved jobs by group, counted from the reserved set (so a lease that ran out, recovered
-- above, frees its slot).
local function running_by_group()
  local running = {}
  local ids = redis.call('ZRANGE', RESERVED, 0, -1)
  for _, group in ipairs(read_many('HMGET', GROUPS, ids)) do
    if group then
      running[group] = (running[group] or 0) + 1
    end
  end
  return running
end

-- Choose up to `limit` waiting jobs the limits let start, in waiting order; hold the jobs of
-- closed groups met on the way (see hold). Returns the ids and the holds by reason.
local function take_limited(limit, concurrency, group_concurrency, rate_us, group_rate_us,
    ahead_us, group_ahead_us)
  local held = { 0, 0, 0, 0 }
  local room = limit
  if concurrency then
    room = math.min(room, concurrency - redis.call('ZCARD', RESERVED))
  end
  local per_group = group_concurrency or group_rate_us
  local running = per_group and running_by_group() or {}
  local function group_closed(group)
    if group_concurrency and (running[group] or 0) >= group_concurrency then
      return 2
    end
    if group_rate_us and not is_due('g:' .. group, group_rate_us, group_ahead_us) then
      return 4
    end
    return nil
  end
  if per_group then
    for _, group in ipairs(redis.call('HKEYS', HELD_GROUPS)) do
      if not group_closed(group) then
        local room_of = group_concurrency and (group_concurrency - (running[group] or 0)) or 1
        release_group(group, math.min(room_of, BATCH))
      end
    end
  end
  local ids, looked = {}, 0
  while #ids < room and looked < BATCH do
    if rate_us and not is_due('', rate_us, ahead_us) then
      held[3] = held[3] + 1
      break
    end
    local window = redis.call('ZRANGE', WAITING, 0, SCAN - 1, 'WITHSCORES')
    if #window == 0 then
      break
    end
    local window_ids = {}
    for i = 1, #window, 2 do
      table.insert(window_ids, window[i])
    end
    local groups = per_group and read_many('HMGET', GROUPS, window_ids) or {}
    for j, id in ipairs(window_ids) do
      looked = looked + 1
      local group = groups[j]
      local closed = group and group_closed(group)
      redis.call('ZREM', WAITING, id)
      if closed then
        held[closed] = held[closed] + 1
        hold(id, window[2 * j], group)
      else
        table.insert(ids, id)
        if rate_us then
          advance('', rate_us)
        end
        if group then
          running[group] = (running[group] or 0) + 1
          if group_rate_us then
            advance('g:' .. group, group_rate_us)
          end
        end
      end
      if #ids >= room or (rate_us and not is_due('', rate_us, ahead_us)) then
        break
      end
    end
  end
  if #ids == 0 and room <= 0 and redis.call('ZCARD', WAITING) > 0 then
    held[1] = held[1] + 1
  end
  return ids, held
end

-- Microseconds until a rate that holds jobs back opens again (nil: none does).
local function held_wait_us(rate_us, group_rate_us, ahead_us, group_ahead_us)
  local at = nil
  if rate_us then
    local queue_at = turn('', rate_us) - ahead_us
    if queue_at > NOW then
      at = queue_at
    end
  end
  if group_rate_us then
    for _, group in ipairs(redis.call('HKEYS', HELD_GROUPS)) do
      local group_at = turn('g:' .. group, group_rate_us) - group_ahead_us
      if group_at > NOW and (not at or group_at < at) then
        at = group_at
      end
    end
  end
  return at and (at - NOW) or nil
end

local refused = layout_refusal()
if refused then
  return refused
end
recover_expired_leases()
promote_due_jobs()
local limit, lease, token = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[5]
local concurrency, group_concurrency = tonumber(ARGV[6]), tonumber(ARGV[7])
local rate_us, group_rate_us = tonumber(ARGV[8]), tonumber(ARGV[9])
local limited = concurrency or group_concurrency or rate_us or group_rate_us
local paused = redis.call('EXISTS', PAUSED) == 1
local ids, held = {}, { 0, 0, 0, 0 }
if paused then
  ids = {}
elseif not limited then
  if redis.call('EXISTS', HELD_GROUPS) == 1 then -- held by limits this worker does not have
    for _, group in ipairs(redis.call('HKEYS', HELD_GROUPS)) do
      release_group(group, BATCH)
    end
  end
  local popped = redis.call('ZPOPMIN', WAITING, limit)
  for i = 1, #popped, 2 do
    ids[#ids + 1] = popped[i]
  end
else
  ids, held = take_limited(limit, concurrency, group_concurrency, rate_us, group_rate_us,
    tonumber(ARGV[10]) or 0, tonumber(ARGV[11]) or 0)
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
  if limited then
    reply[1] = { 0, held[1], held[2], held[3], held[4] }
  end
  return reply
end
if paused then
  sync_tokens(0)
  reply[1] = next_event_in_us(true)
  return reply
end
if not limited then
  sync_tokens()
  reply[1] = next_event_in_us()
  return reply
end
-- Held back: wait for a delayed job, a lease end or a rate to open, and look again within
-- HOLD_POLL_US for slots freed by settles (which wake no pop).
local wait = next_event_in_us()
local opens = held_wait_us(rate_us, group_rate_us, tonumber(ARGV[10]) or 0,
  tonumber(ARGV[11]) or 0)
for _, candidate in ipairs({ opens, HOLD_POLL_US }) do
  if candidate and (wait < 0 or candidate < wait) then
    wait = candidate
  end
end
if held[1] + held[2] + held[3] + held[4] > 0 then
  sync_tokens(0)
else
  sync_tokens()
end
reply[1] = { wait, held[1], held[2], held[3], held[4] }
return reply
