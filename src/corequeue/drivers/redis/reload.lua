-- Move up to BATCH jobs of ARGV 2 ("failed" or "timeout") back to waiting, oldest first.
-- Returns how many moved; the client calls again until that is 0.
local refused = layout_refusal()
if refused then
  return refused
end
local source = FAILED
if ARGV[2] == 'timeout' then
  source = TIMEOUT
end
local ids = redis.call('ZRANGE', source, 0, BATCH - 1)
for _, id in ipairs(ids) do
  redis.call('ZREM', source, id)
  make_waiting(id)
end
top_up_tokens(0)
return #ids
