-- Deletes a CometD session record if its owner is the caller. KEYS: session. ARGV: owner.
-- Replies 1 or 0.
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
