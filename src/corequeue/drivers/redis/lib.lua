-- corequeue: shared head of every script (the driver prepends it to each script body).
--
-- Store layout 2. Every key a script touches is one of its KEYS, and they all share the
-- queue's hash tag: a script runs whole on the node holding the queue's slot, and while that
-- slot migrates, Redis answers ASK or TRYAGAIN before running it instead of failing halfway.
-- KEYS  1 waiting   ZSET  id -> arrival number minus priority * PRIORITY_STEP (highest
--                         priority first, then FIFO; see make_all_waiting)
--       2 delayed   ZSET  id -> due instant, microseconds since the epoch
--       3 reserved  ZSET  id -> lease expiry, microseconds
--       4 failed    ZSET  id -> time parked, microseconds
--       5 timeout   ZSET  id -> time parked, microseconds
--       6 notify    LIST  wake-up tokens for blocked pops (BLPOP)
--       7 seq       STRING  arrival counter (scores of waiting)
--       8 expiries  HASH  id -> leases lost since the client last wrote the envelope
--       9 tokens    HASH  id -> reservation token of the pop holding it (reserved only)
--      10 jobs      HASH  id -> envelope (wire format), or LOST .. why for a job parked in
--                         failed because its envelope was missing
--      11 layout    STRING  the store layout, '2' (absent: a new queue, or layout 1)
--      12 periodic  HASH  periodic schedule name -> its last enqueued slot, ms since the epoch
--      13 priorities HASH id -> priority, for jobs whose priority is not 0
--      14 paused    STRING  present while the queue is paused: pops hand out nothing
--      15 rates     HASH  rate scope ('' the queue, 'g:<group>') -> next allowed start, µs
--                         ('#': where prune.lua's scan of idle scopes goes on)
--      16 groups    HASH  id -> group, for jobs that have one
--      17 held      ZSET  id -> waiting score: waiting jobs a pop set aside because their
--                         group was at its limit (they count as waiting; see hold)
--      18 held_index ZSET (all scores 0) group NUL score NUL id, for held jobs in group and
--                         waiting order
--      19 held_groups HASH group -> how many of its jobs are held
--      20 wake      LIST  the private wake-up list of the pop whose timer runs pop.lua; any
--                         other script gets a placeholder it never touches
--      21 completed ZSET  id -> when its kept result is pruned, microseconds
--      22 finished  STREAM  one entry per script that moved jobs to completed or failed:
--                         what wakes `result()` waiters (XREAD BLOCK), trimmed to ~100
--      23 running   HASH  'p:' .. id -> progress of a running job ("<fraction> <message>");
--                         'c:' .. id -> token of the reservation a cancel() asked to stop
--      24 results   HASH  id -> kept result of a completed job: "<keep_result in ms>:<result>"
--                         (the envelope stays as pushed; see complete.lua)
-- ARGV  1 now in microseconds since the epoch, or "" to read the Redis server's clock
--       2.. per script
local WAITING, DELAYED, RESERVED, FAILED, TIMEOUT = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local NOTIFY, SEQ, EXPIRIES, TOKENS = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local JOBS, LAYOUT, PERIODIC, PRIORITIES = KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local PAUSED, RATES, GROUPS, HELD = KEYS[14], KEYS[15], KEYS[16], KEYS[17]
local HELD_INDEX, HELD_GROUPS, WAKE = KEYS[18], KEYS[19], KEYS[20]
local COMPLETED, FINISHED, RUNNING, RESULTS = KEYS[21], KEYS[22], KEYS[23], KEYS[24]
local SCRIPT_KEYS = 24 -- the keys above; migrate.lua gets more after them
local CHANNELS = { WAITING, DELAYED, RESERVED, FAILED, TIMEOUT }
local TOKEN_CAP = 128 -- more blocked pops than this wake in turns, not at once
local BATCH = 1000 -- most jobs one call moves, so no call blocks Redis for long
local LOST = 'lost:' -- an envelope never starts so: it is a JSON object
local VERSION = '2'
-- A waiting job's score is its arrival number minus priority * PRIORITY_STEP: priorities
-- -100..100 keep every score within +-101 * 2^44, exact in a double (below 2^53), and a job
-- of priority 0 scores its arrival number, as in stores written before priorities existed.
local PRIORITY_STEP = 17592186044416 -- 2^44 arrivals per priority

local function server_now_us()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000000 + tonumber(time[2])
end

-- Every time is in microseconds, compared exactly: a job delayed by d at instant t is due at
-- t + d, never before. Microseconds since 1970 stay exact in a Lua double (below 2^53).
local NOW = tonumber(ARGV[1]) or server_now_us()

-- Scores as integers: tostring() of a Lua number keeps only 14 significant digits.
local function int(number)
  return string.format('%.0f', number)
end

-- An error reply when the queue is not in this layout (the caller returns it before any
-- write); nil when it is. A queue with no job in any channel and no layout yet is new: it
-- starts in this layout (the one write the read-only scripts may make). Layout 1 data waits
-- for `corequeue migrate` (migrate.lua); '1>2:<n>' means that conversion is under way.
local function layout_refusal()
  local layout = redis.call('GET', LAYOUT)
  if layout == VERSION then
    return nil
  end
  if not layout then
    for _, key in ipairs(CHANNELS) do
      if redis.call('EXISTS', key) == 1 then
        return redis.error_reply('COREQUEUE_LAYOUT 1')
      end
    end
    redis.call('SET', LAYOUT, VERSION)
    return nil
  end
  return redis.error_reply('COREQUEUE_LAYOUT ' .. layout)
end

-- Wake the `result()` waiters of every process: they look their jobs up again. (XADD * is not
-- deterministic: Redis 5 and later replicate a script's effects, so writes may follow it.)
local function announce_finished()
  redis.call('XADD', FINISHED, 'MAXLEN', '~', 100, '*', 'n', '1')
end

local function is_lost(envelope)
  return string.sub(envelope, 1, #LOST) == LOST
end

-- Drop the progress, cancel request and kept result of jobs that leave the store (nothing to
-- do, a call or two, while no job of the queue reported progress, was asked to stop or kept
-- its result).
local function forget_running(ids)
  if #ids == 0 then
    return
  end
  if redis.call('EXISTS', RESULTS) == 1 then
    for first = 1, #ids, BATCH do
      redis.call('HDEL', RESULTS, unpack(ids, first, math.min(first + BATCH - 1, #ids)))
    end
  end
  if redis.call('EXISTS', RUNNING) == 0 then
    return
  end
  local fields = {}
  for _, id in ipairs(ids) do
    fields[#fields + 1] = 'p:' .. id
    fields[#fields + 1] = 'c:' .. id
  end
  for first = 1, #fields, BATCH do
    redis.call('HDEL', RUNNING, unpack(fields, first, math.min(first + BATCH - 1, #fields)))
  end
end

local function forget(id)
  redis.call('HDEL', JOBS, id)
  redis.call('HDEL', EXPIRIES, id)
  redis.call('HDEL', TOKENS, id)
  redis.call('HDEL', PRIORITIES, id)
  redis.call('HDEL', GROUPS, id)
  forget_running({ id })
end

-- One variadic command per slice of `items` (at most BATCH groups of `width` entries, so no
-- call unpacks more than Lua's stack takes): redis.call(command, key, items...).
local function call_sliced(command, key, items, width)
  local size = BATCH * width
  for first = 1, #items, size do
    redis.call(command, key, unpack(items, first, math.min(first + size - 1, #items)))
  end
end

-- HMGET or ZMSCORE of many ids: the replies in id order (false where absent), one call per
-- BATCH ids instead of one per id.
local function read_many(command, key, ids)
  if #ids <= BATCH then
    return #ids > 0 and redis.call(command, key, unpack(ids)) or {}
  end
  local values = {}
  for first = 1, #ids, BATCH do
    local reply = redis.call(command, key, unpack(ids, first, math.min(first + BATCH - 1, #ids)))
    for i = 1, #reply do
      values[first + i - 1] = reply[i]
    end
  end
  return values
end

-- forget() for many ids at once: four calls per BATCH ids instead of four per id.
local function forget_all(ids)
  call_sliced('HDEL', JOBS, ids, 1)
  call_sliced('HDEL', EXPIRIES, ids, 1)
  call_sliced('HDEL', TOKENS, ids, 1)
  call_sliced('HDEL', PRIORITIES, ids, 1)
  call_sliced('HDEL', GROUPS, ids, 1)
  forget_running(ids)
end

-- Fencing of a batch: ARGV from `first` holds (id, token) pairs. Returns the ids, and for each
-- whether its pair holds the job (see holds) while it is reserved, from two reads in all. With
-- `once`, an id given twice holds only at its first pair: the first settle takes the job.
local function holding_pairs(first, once)
  local ids, tokens = {}, {}
  for i = first, #ARGV, 2 do
    ids[#ids + 1], tokens[#tokens + 1] = ARGV[i], ARGV[i + 1]
  end
  local stored, leases = read_many('HMGET', TOKENS, ids), read_many('ZMSCORE', RESERVED, ids)
  local held, seen = {}, {}
  for j, id in ipairs(ids) do
    held[j] = tokens[j] ~= '' and stored[j] == tokens[j] and leases[j] ~= false
      and not (once and seen[id])
    seen[id] = true
  end
  return ids, held
end

-- A job whose envelope is missing (deleted behind the queue's back, or never moved from an
-- older layout) is never dropped: it goes to failed, its envelope replaced by LOST .. why, so
-- info counts it and inspection shows it. Returns that text.
local function park_lost(id, why)
  local marker = LOST .. why
  redis.call('HSET', JOBS, id, marker)
  redis.call('HDEL', EXPIRIES, id)
  redis.call('HDEL', TOKENS, id)
  redis.call('HDEL', PRIORITIES, id)
  redis.call('HDEL', GROUPS, id)
  redis.call('ZADD', FAILED, int(NOW), id)
  return marker
end

-- Fencing: whether `token` is the one the pop that reserved job `id` handed out. Every move
-- out of reserved clears the stored token, so a holder whose lease was recovered (and the job
-- perhaps popped again, or acked and pushed again under the same id) no longer matches; the
-- caller still checks `reserved` in the same script. "" (a job never popped) matches nothing.
local function holds(id, token)
  return token ~= '' and redis.call('HGET', TOKENS, id) == token
end

-- Take job `id` out of reserved if `token` holds it; returns whether it did.
local function unreserve(id, token)
  if holds(id, token) and redis.call('ZREM', RESERVED, id) == 1 then
    redis.call('HDEL', TOKENS, id)
    return true
  end
  return false
end

local function is_pending(id)
  return redis.call('ZSCORE', WAITING, id) or redis.call('ZSCORE', DELAYED, id)
    or redis.call('ZSCORE', RESERVED, id) or redis.call('ZSCORE', HELD, id)
end

-- Held jobs: a pop whose limits close a group moves the waiting jobs of that group it meets
-- from `waiting` to `held`, so the head of `waiting` holds jobs that may start and a group at
-- its limit never blocks the others. `held_index` finds a group's held jobs in waiting order;
-- a pop that finds the group open again moves them back with their scores.
local SCORE_OFFSET = 4503599627370496 -- 2^52: every waiting score plus it is positive

local function held_member(group, score, id)
  return group .. '\0' .. string.format('%017.0f', tonumber(score) + SCORE_OFFSET) .. '\0' .. id
end

local function hold(id, score, group)
  redis.call('ZADD', HELD, score, id)
  redis.call('ZADD', HELD_INDEX, 0, held_member(group, score, id))
  redis.call('HINCRBY', HELD_GROUPS, group, 1)
end

local function count_released(group, count)
  if redis.call('HINCRBY', HELD_GROUPS, group, -count) <= 0 then
    redis.call('HDEL', HELD_GROUPS, group)
  end
end

-- Take job `id` out of `held` (cancel, delete, flush); returns whether it was there.
local function unhold(id)
  local score = redis.call('ZSCORE', HELD, id)
  if not score then
    return false
  end
  local group = redis.call('HGET', GROUPS, id) or ''
  redis.call('ZREM', HELD, id)
  redis.call('ZREM', HELD_INDEX, held_member(group, score, id))
  count_released(group, 1)
  return true
end

-- Move up to `count` held jobs of `group` back to waiting, first in waiting order first, with
-- the scores they had. Returns how many moved.
local function release_group(group, count)
  local members = redis.call('ZRANGEBYLEX', HELD_INDEX, '[' .. group .. '\0',
    '(' .. group .. '\1', 'LIMIT', 0, count)
  if #members == 0 then
    redis.call('HDEL', HELD_GROUPS, group)
    return 0
  end
  local ids, scored = {}, {}
  for _, member in ipairs(members) do
    local padded, id = string.match(member, '^.-%z(%d+)%z(.*)$', #group + 1)
    table.insert(ids, id)
    table.insert(scored, int(tonumber(padded) - SCORE_OFFSET))
    table.insert(scored, id)
  end
  call_sliced('ZREM', HELD, ids, 1)
  call_sliced('ZREM', HELD_INDEX, members, 1)
  call_sliced('ZADD', WAITING, scored, 2)
  count_released(group, #members)
  return #members
end

-- Make job `id` waiting, ordered by its priority (read from `priorities` when not given),
-- then by arrival.
local function make_waiting(id, priority)
  priority = priority or tonumber(redis.call('HGET', PRIORITIES, id)) or 0
  redis.call('ZADD', WAITING, int(redis.call('INCR', SEQ) - priority * PRIORITY_STEP), id)
end

-- make_waiting() for many ids, in their order: one INCRBY and one ZADD per BATCH ids (and one
-- HMGET of their priorities when `priorities`, a list in id order, is not given).
local function make_all_waiting(ids, priorities)
  if #ids == 0 then
    return
  end
  priorities = priorities or read_many('HMGET', PRIORITIES, ids)
  local first = redis.call('INCRBY', SEQ, #ids) - #ids
  local scored = {}
  for i, id in ipairs(ids) do
    table.insert(scored, int(first + i - (tonumber(priorities[i]) or 0) * PRIORITY_STEP))
    table.insert(scored, id)
  end
  call_sliced('ZADD', WAITING, scored, 2)
end

-- Waiting now (a delay of 0 or less), or delayed until NOW + delay microseconds; returns 1
-- when it became the next job due, so blocked pops must wake to shorten their wait.
local function schedule(id, delay, priority)
  if delay <= 0 then
    make_waiting(id, priority)
    return 0
  end
  redis.call('ZADD', DELAYED, int(NOW + delay), id)
  if redis.call('ZRANGE', DELAYED, 0, 0)[1] == id then
    return 1
  end
  return 0
end

-- Store the envelope of a job being pushed, idempotent by id: an id already waiting, delayed
-- or reserved is left alone; one in failed or timeout is replaced. Returns whether it was
-- stored (the caller then schedules it).
--
-- Every pending or parked job has its field in `jobs`, so an id without one is new: HSETNX
-- stores it in one call. Only an id seen before pays for the channel look-ups.
local function store_envelope(id, envelope)
  if redis.call('HSETNX', JOBS, id, envelope) == 1 then
    return true
  end
  if is_pending(id) then
    return false
  end
  redis.call('ZREM', FAILED, id) -- in failed, timeout or completed: replaced
  redis.call('ZREM', TIMEOUT, id)
  redis.call('ZREM', COMPLETED, id)
  forget_running({ id })
  redis.call('HDEL', EXPIRIES, id)
  redis.call('HDEL', PRIORITIES, id)
  redis.call('HDEL', GROUPS, id)
  redis.call('HSET', JOBS, id, envelope)
  return true
end

-- Push one job of `priority` and `group` ("" for none; see store_envelope). Returns whether it
-- was stored, and 1 when it became the next job due (see schedule), else 0.
local function push_one(id, delay, envelope, priority, group)
  if store_envelope(id, envelope) then
    if priority ~= 0 then
      redis.call('HSET', PRIORITIES, id, priority)
    end
    if group ~= '' then
      redis.call('HSET', GROUPS, id, group)
    end
    return true, schedule(id, delay, priority)
  end
  return false, 0
end

-- One token per waiting job (capped), plus `extra`: each wakes one blocked pop. Producers only
-- add tokens; a token a pop does not need costs it one extra look.
local function top_up_tokens(extra)
  local missing = math.min(redis.call('ZCARD', WAITING) + extra, TOKEN_CAP)
    - redis.call('LLEN', NOTIFY)
  if missing > 0 then
    local tokens = {}
    for i = 1, missing do
      tokens[i] = '1'
    end
    redis.call('RPUSH', NOTIFY, unpack(tokens))
  end
end

-- Exactly one token per waiting job (capped): run by a consumer that is about to wait itself.
-- `wanted` overrides the count: 0 for a paused queue (resume tops tokens up again, see
-- pause.lua) and for a pop whose limits held every due job back.
local function sync_tokens(wanted)
  wanted = wanted or math.min(redis.call('ZCARD', WAITING), TOKEN_CAP)
  if wanted == 0 then
    redis.call('DEL', NOTIFY)
    return
  end
  top_up_tokens(0)
  redis.call('LTRIM', NOTIFY, 0, wanted - 1)
end

local function has_attempts_left(id, envelope)
  local ok, decoded = pcall(cjson.decode, envelope)
  if not ok or type(decoded) ~= 'table' then
    return false
  end
  local attempts, max_attempts = tonumber(decoded.attempts), tonumber(decoded.max_attempts)
  if not attempts or not max_attempts then
    return false
  end
  local lost = tonumber(redis.call('HGET', EXPIRIES, id)) or 0
  return attempts + lost < max_attempts
end

-- A lease that ran out is a failed attempt: back to waiting while attempts remain, else parked
-- in timeout. The envelope is not rewritten: `expiries` records the change, and the client
-- applies it (attempts + count, last_error = lease expired) when it reads the job.
-- A job parked so wakes the `result()` waiters, as a settle to failed does.
local function recover_expired_leases()
  local ids = redis.call('ZRANGEBYSCORE', RESERVED, '-inf', int(NOW), 'LIMIT', 0, BATCH)
  local parked = false
  for _, id in ipairs(ids) do
    redis.call('ZREM', RESERVED, id)
    redis.call('HDEL', TOKENS, id)
    local envelope = redis.call('HGET', JOBS, id)
    if not envelope then
      park_lost(id, 'its envelope was missing when its lease ran out')
      parked = true
    elseif has_attempts_left(id, envelope) then
      redis.call('HINCRBY', EXPIRIES, id, 1)
      make_waiting(id)
    else
      redis.call('HINCRBY', EXPIRIES, id, 0)
      redis.call('ZADD', TIMEOUT, int(NOW), id)
      parked = true
    end
  end
  if parked then
    announce_finished()
  end
end

local function promote_due_jobs()
  local ids = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', int(NOW), 'LIMIT', 0, BATCH)
  call_sliced('ZREM', DELAYED, ids, 1)
  make_all_waiting(ids)
end

-- Microseconds until the next delayed job is due or the next lease runs out; -1 for never.
-- A paused queue (`leases_only`) waits for leases only.
local function next_event_in_us(leases_only)
  local at = false
  for _, key in ipairs(leases_only and { RESERVED } or { DELAYED, RESERVED }) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]
    if first and (not at or tonumber(first) < at) then
      at = tonumber(first)
    end
  end
  if not at then
    return -1
  end
  return math.max(at - NOW, 0)
end

