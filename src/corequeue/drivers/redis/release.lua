-- Put reserved jobs (ARGV 3..: ids) back in waiting without counting an attempt.
local released = 0
for i = 3, #ARGV do
  if redis.call('ZREM', RESERVED, ARGV[i]) == 1 then
    make_waiting(ARGV[i])
    released = released + 1
  end
end
top_up_tokens(0)
return released
