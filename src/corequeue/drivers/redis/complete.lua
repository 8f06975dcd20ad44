-- Ack reserved jobs that keep their result. ARGV 2 is the number n of jobs; ARGV 3 .. 2 + 2n
-- are their (id, token) pairs, then come n (keep in microseconds, kept result) pairs in the
-- same order. A job held under its token moves to completed until NOW + keep, and its kept
-- result ("<keep_result in ms>:<result>") goes to `results`: the envelope stays as pushed, so
-- a kept result costs only its own bytes, and the leases the job lost stay counted beside it.
-- Returns the positions (0-based) of the jobs left alone: stale tokens, or jobs no longer
-- reserved. A fixed number of calls per batch.
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
local done, kept, scores, stale, seen = {}, {}, {}, {}, {}
for j, id in ipairs(ids) do
  if tokens[j] ~= '' and stored[j] == tokens[j] and leases[j] ~= false and not seen[id] then
    done[#done + 1] = id
    kept[#kept + 1] = id
    kept[#kept + 1] = ARGV[2 + 2 * n + 2 * j]
    scores[#scores + 1] = int(NOW + tonumber(ARGV[1 + 2 * n + 2 * j]))
    scores[#scores + 1] = id
  else
    stale[#stale + 1] = j - 1
  end
  seen[id] = true
end
if #done > 0 then
  call_sliced('ZREM', RESERVED, done, 1)
  call_sliced('HDEL', TOKENS, done, 1)
  call_sliced('HSET', RESULTS, kept, 2)
  call_sliced('ZADD', COMPLETED, scores, 2)
  announce_finished()
end
return stale
