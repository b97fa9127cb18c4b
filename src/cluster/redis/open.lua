-- Opens the shared log: starts a new epoch when there is none, then returns the epoch and
-- the last sequence. KEYS: epoch, seq, log. ARGV: a fresh random epoch.
-- A new epoch starts a new log: whatever was left of the counter and the stream (an evicted
-- epoch key) belongs to no epoch any more, and sequences of the new one start at 1.
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('DEL', KEYS[2], KEYS[3])
end
local epoch = redis.call('GET', KEYS[1])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
return {epoch, last}
