-- Writes a CometD session record if it is absent or its owner's, or always when adopting.
-- KEYS: session. ARGV: owner, record (JSON), ttl ms, adopt (1 or 0). Replies 1, or 0 when
-- another owner holds the record.
local owner = redis.call('HGET', KEYS[1], 'owner')
if ARGV[4] ~= '1' and owner and owner ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'record', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
