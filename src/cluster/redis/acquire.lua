-- Grants a user's lease to a holder unless another holder has it.
-- KEYS: lease, fence. ARGV: holder, ttl_ms. Replies the new fence, or nothing.
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, ':', 1, true)
  if string.sub(current, sep + 1) ~= ARGV[1] then return false end
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  -- A counter that is gone (first start, or Redis lost its data) restarts from the clock in
  -- microseconds, so fences keep growing across data loss (unless grants outpaced 1 per µs).
  local time = redis.call('TIME')
  redis.call('SET', KEYS[2], string.format('%.0f', tonumber(time[1]) * 1000000 + tonumber(time[2])))
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], string.format('%.0f', fence) .. ':' .. ARGV[1], 'PX', ARGV[2])
return fence
