-- Put reserved jobs back in waiting without counting an attempt. ARGV 2..: (id, token)
-- pairs; a job moves only if it is reserved under that token. Returns how many moved.
local refused = layout_refusal()
if refused then
  return refused
end
local released = 0
for i = 2, #ARGV, 2 do
  if unreserve(ARGV[i], ARGV[i + 1]) then
    make_waiting(ARGV[i])
    released = released + 1
  end
end
top_up_tokens(0)
return released
