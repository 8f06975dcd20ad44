-- Pause (ARGV 2 = '1') or resume (ARGV 2 = '0') the queue. While `paused` exists pop.lua
-- reserves nothing and keeps no wake-up tokens; resuming tops them up, so blocked pops on
-- every worker wake and take the jobs that waited. Returns nothing.
local refused = layout_refusal()
if refused then
  return refused
end
if ARGV[2] == '1' then
  redis.call('SET', PAUSED, '1')
  return 0
end
redis.call('DEL', PAUSED)
top_up_tokens(0)
return 0
