-- Ack reserved jobs that keep their result. ARGV 2 is the number n of jobs; ARGV 3 .. 2 + 2n
-- are their (id, token) pairs, then come n (keep in microseconds, result) pairs in the same
-- order. A job held under its token moves to completed until NOW + keep.
--
-- A result that starts with ',' is the envelope member carrying it (`"result": ...`): it is
-- appended to the stored envelope, which the holder's pop read and nobody has changed since,
-- so a kept result costs only its own bytes (with `keep_result_ms` when the queue's default
-- set it rather than the envelope). The leases the job lost stay counted beside the
-- envelope, as while it was reserved. A stored envelope that already names a result (or is not
-- a JSON object) is left alone: the caller sends the whole envelope again (a result that
-- starts with '{'), which replaces it.
--
-- Returns two lists of positions (0-based): the jobs left alone because their token is stale or
-- they are no longer reserved, and the jobs whose whole envelope the caller must send. A fixed
-- number of calls per batch.
local refused = layout_refusal()
if refused then
  return refused
end
local n = tonumber(ARGV[2])
local ids, tokens = {}, {}
for j = 1, n do
  ids[j], tokens[j] = ARGV[1 + 2 * j], ARGV[2 + 2 * j]
end
local stored, leases = read_many('HMGET', TOKENS, ids), read_many('ZMSCORE', RESERVED, ids)
local held = {}
for j, id in ipairs(ids) do
  if tokens[j] ~= '' and stored[j] == tokens[j] and leases[j] ~= false and not held[id] then
    held[id] = j
  end
end
local appending = {}
for j, id in ipairs(ids) do
  if held[id] == j and string.byte(ARGV[2 + 2 * n + 2 * j]) == 44 then -- ','
    appending[#appending + 1] = id
  end
end
local envelopes = read_many('HMGET', JOBS, appending)
local old = {}
for k, id in ipairs(appending) do
  old[id] = envelopes[k]
end
local done, written, scores, stale, resend, whole = {}, {}, {}, {}, {}, {}
for j, id in ipairs(ids) do
  if held[id] ~= j then
    stale[#stale + 1] = j - 1
  else
    local keep, result = ARGV[1 + 2 * n + 2 * j], ARGV[2 + 2 * n + 2 * j]
    local envelope = result
    if old[id] ~= nil then
      local before = old[id]
      if before and string.sub(before, -1) == '}' and not string.find(before, '"result', 1, true)
      then
        local kept_for = ''
        if not string.find(before, '"keep_result_ms"', 1, true) then -- the queue's default
          kept_for = string.format(',"keep_result_ms":%d', math.ceil(tonumber(keep) / 1000))
        end
        envelope = string.sub(before, 1, -2) .. result .. kept_for .. '}'
      else
        envelope = nil
      end
    else
      whole[#whole + 1] = id
    end
    if envelope then
      done[#done + 1] = id
      written[#written + 1] = id
      written[#written + 1] = envelope
      scores[#scores + 1] = int(NOW + tonumber(keep))
      scores[#scores + 1] = id
    else
      resend[#resend + 1] = j - 1
    end
  end
end
if #done > 0 then
  call_sliced('ZREM', RESERVED, done, 1)
  call_sliced('HDEL', TOKENS, done, 1)
  call_sliced('HDEL', EXPIRIES, whole, 1) -- a whole envelope counts its lost leases itself
  call_sliced('HSET', JOBS, written, 2)
  call_sliced('ZADD', COMPLETED, scores, 2)
  announce_finished()
end
return { stale, resend }
