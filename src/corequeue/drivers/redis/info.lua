-- Count each channel: {waiting, delayed, reserved, failed, timeout, completed}. Delayed jobs already due
-- count as waiting, as they are the moment any pop runs. Jobs parked because their envelope
-- was missing count as failed; held jobs (see hold) count as waiting.
local refused = layout_refusal()
if refused then
  return refused
end
local due = redis.call('ZCOUNT', DELAYED, '-inf', int(NOW))
return {
  redis.call('ZCARD', WAITING) + due + redis.call('ZCARD', HELD),
  redis.call('ZCARD', DELAYED) - due,
  redis.call('ZCARD', RESERVED),
  redis.call('ZCARD', FAILED),
  redis.call('ZCARD', TIMEOUT),
  redis.call('ZCARD', COMPLETED),
}
