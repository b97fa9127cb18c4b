-- Appends entries if the epoch is the log's and the lease is the grant; trims the log.
-- KEYS: epoch, lease, seq, log.
-- ARGV: epoch, grant ("<fence>:<holder>"), max_len, max_age_ms (0: none), payloads...
-- Replies {'ok', first sequence, count}, {'epoch', current epoch or nothing}, {'fenced'}.
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then
  if epoch then return {'epoch', epoch} end
  return {'epoch'}
end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return {'fenced'}
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local first = nil
for i = 5, #ARGV do
  local seq = redis.call('INCR', KEYS[3])
  first = first or seq
  -- '~': Redis trims whole stream nodes only (cheap), so the length may exceed max_len by
  -- up to one node (stream-node-max-entries, 100 by default).
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], string.format('%.0f-0', seq),
    'p', ARGV[i], 't', string.format('%.0f', now))
end
local max_age = tonumber(ARGV[4])
if max_age > 0 then
  local cutoff = now - max_age
  local oldest = redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', 1)[1]
  if oldest and tonumber(oldest[2][4]) < cutoff then
    -- Sequences between the oldest entry and the last are dense (the log is trimmed only
    -- at its head) and their times only grow: search for the first entry young enough.
    local lo = tonumber(string.match(oldest[1], '^(%d+)')) + 1
    local hi = tonumber(redis.call('GET', KEYS[3]))
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      local id = string.format('%.0f-0', mid)
      local entry = redis.call('XRANGE', KEYS[4], id, id)[1]
      if entry and tonumber(entry[2][4]) >= cutoff then hi = mid else lo = mid + 1 end
    end
    redis.call('XTRIM', KEYS[4], 'MINID', string.format('%.0f-0', lo))
  end
end
return {'ok', first or 0, #ARGV - 4}
