-- Extends a lease if it is still the grant. KEYS: lease. ARGV: grant, ttl_ms. Replies 1 or 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
