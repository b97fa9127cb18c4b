-- Reads up to max entries after a sequence, if the epoch is the log's.
-- KEYS: epoch, seq, log. ARGV: epoch, after, max.
-- Replies {'ok', seq, payload, seq, payload, ...}, {'epoch', current epoch or nothing},
-- {'trimmed', oldest sequence held (last + 1 when the log holds none)}.
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then
  if epoch then return {'epoch', epoch} end
  return {'epoch'}
end
local after = tonumber(ARGV[2])
local start = string.format('%.0f-0', after + 1)
local entries = redis.call('XRANGE', KEYS[3], start, '+', 'COUNT', ARGV[3])
local reply = {'ok'}
for i, entry in ipairs(entries) do
  local seq = tonumber(string.match(entry[1], '^(%d+)'))
  if i == 1 and seq > after + 1 then return {'trimmed', seq} end
  reply[#reply + 1] = seq
  reply[#reply + 1] = entry[2][2]
end
if #entries == 0 then
  local last = tonumber(redis.call('GET', KEYS[2]) or '0')
  if last > after then return {'trimmed', last + 1} end
end
return reply
