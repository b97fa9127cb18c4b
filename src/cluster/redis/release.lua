-- Deletes a lease if it is still the grant, and tells the instances waiting for it (they
-- try at once rather than at their next period). KEYS: lease. ARGV: grant, the releases
-- channel, the user. Replies 1 or 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
