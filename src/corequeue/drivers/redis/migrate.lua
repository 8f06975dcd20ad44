-- Convert a queue from store layout 1 to layout 2, one batch of ids per call; the driver's
-- migrate() calls it until it answers '2'. This script alone runs on a queue in layout 1.
--
-- Layout 1 kept each envelope in a string key `<tag>:job:<id>` and scored delayed, reserved,
-- failed and timeout in milliseconds; layout 2 keeps envelopes in `jobs` and scores in
-- microseconds. `layout` tells how far the conversion got: absent (layout 1, or a new queue),
-- '1>2:<n>' (converting channel n of CHANNELS; the other scripts refuse to run meanwhile),
-- '2' (done). Channel n is converted by moving its ids into the scratch set (KEYS 14) with
-- their scores converted and their envelopes moved into `jobs`; once it is empty, the scratch
-- set takes its name and the next channel starts. Every call is atomic, so concurrent or
-- interrupted conversions pick up where the last call left off. Tokens, lease expiry counts,
-- the arrival counter and the wake-up tokens mean the same in both layouts: they stay.
-- KEYS  14 the scratch sorted set; 15.. the layout 1 envelope keys of the ids ARGV 3..
-- ARGV  2 the state the client read before choosing the ids ("" to start or just look)
--       3.. ids of channel n, from its head
-- Returns the state after the call.
local state = redis.call('GET', LAYOUT)
if state == VERSION then
  return state
end
if not state then
  state = VERSION
  for _, key in ipairs(CHANNELS) do
    if redis.call('EXISTS', key) == 1 then
      state = '1>2:1'
    end
  end
  redis.call('SET', LAYOUT, state)
  return state
end
local n = tonumber(string.match(state, '^1>2:(%d)$'))
if not n or n > #CHANNELS then
  return redis.error_reply('COREQUEUE_LAYOUT ' .. state)
end
if ARGV[2] ~= state then -- another conversion moved on since the client read its ids
  return state
end

-- A delayed job is due at the end of its millisecond (never early: layout 1 rounded now down);
-- lease expiries and parking times keep their instant. Waiting scores are arrival numbers.
local SCALE, OFFSET = { 1, 1000, 1000, 1000, 1000 }, { 0, 999, 0, 0, 0 }
local source, scratch = CHANNELS[n], KEYS[17]
for i = 3, #ARGV do
  local id, old_key = ARGV[i], KEYS[i + 15]
  local score = redis.call('ZSCORE', source, id)
  if score then
    redis.call('ZADD', scratch, int(tonumber(score) * SCALE[n] + OFFSET[n]), id)
    redis.call('ZREM', source, id)
    local envelope = redis.call('GET', old_key)
    if envelope then -- without one, the id is parked as lost when a script next reads it
      redis.call('HSETNX', JOBS, id, envelope)
      redis.call('DEL', old_key)
    end
  end
end
if redis.call('EXISTS', source) == 0 then
  if redis.call('EXISTS', scratch) == 1 then
    redis.call('RENAME', scratch, source)
  end
  state = n < #CHANNELS and ('1>2:' .. (n + 1)) or VERSION
  redis.call('SET', LAYOUT, state)
end
return state
