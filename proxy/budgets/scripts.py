"""The Lua scripts: each runs atomically in Redis, so concurrent requests cannot interleave.

Budget counters are hashes {e: epoch, s: settled nano-USD, r: reserved nano-USD}; the plan's
request counter uses the same shape with requests as the unit. Rate-limit windows are plain
integers per minute. Numbers are compared as Lua doubles: exact below 2**53 (9 million USD in
nano-USD); arithmetic on the stored values is done by Redis in 64-bit integers.
"""

# KEYS: generation, counters (n), windows (m).
# ARGV: generation, n, m, per counter (limit, amount, block), per window (limit, amount, ttl).
# -> {1, epoch...} admitted | {-2} stale rules | {-1, i} counter i missing (rebuild it)
#    | {0, i, settled, reserved} counter i would be exceeded | {2, j} window j is full
RESERVE = """
local gen = redis.call('GET', KEYS[1]) or '0'
if gen ~= ARGV[1] then return {-2} end
local n = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
local a = 4
for i = 1, n do
  local v = redis.call('HMGET', KEYS[1 + i], 'e', 's', 'r')
  if not v[1] then return {-1, i} end
  if ARGV[a + 2] == '1' and tonumber(v[2]) + tonumber(v[3]) + tonumber(ARGV[a + 1])
      > tonumber(ARGV[a]) then
    return {0, i, v[2], v[3]}
  end
  a = a + 3
end
for j = 1, m do
  local used = tonumber(redis.call('GET', KEYS[1 + n + j]) or '0')
  if used > 0 and used + tonumber(ARGV[a + 1]) > tonumber(ARGV[a]) then return {2, j} end
  a = a + 3
end
local out = {1}
a = 4
for i = 1, n do
  redis.call('HINCRBY', KEYS[1 + i], 'r', ARGV[a + 1])
  out[#out + 1] = redis.call('HGET', KEYS[1 + i], 'e')
  a = a + 3
end
for j = 1, m do
  redis.call('INCRBY', KEYS[1 + n + j], ARGV[a + 1])
  redis.call('EXPIRE', KEYS[1 + n + j], ARGV[a + 2])
  a = a + 3
end
return out
"""

# KEYS: counters (n), windows (m).
# ARGV: n, m, per counter (epoch, -reserved, actual), per window (actual - reserved).
# A counter rebuilt since the reservation (other epoch) keeps its reservations untouched but
# still takes the actual cost; a missing counter is left alone (its rebuild reads PostgreSQL).
# -> the settled total of each counter, -1 where it is missing.
SETTLE = """
local n = tonumber(ARGV[1])
local m = tonumber(ARGV[2])
local a = 3
local out = {}
for i = 1, n do
  local e = redis.call('HGET', KEYS[i], 'e')
  if not e then
    out[#out + 1] = -1
  else
    if e == ARGV[a] then redis.call('HINCRBY', KEYS[i], 'r', ARGV[a + 1]) end
    out[#out + 1] = redis.call('HINCRBY', KEYS[i], 's', ARGV[a + 2])
  end
  a = a + 3
end
for j = 1, m do
  if ARGV[a] ~= '0' and redis.call('EXISTS', KEYS[n + j]) == 1 then
    redis.call('INCRBY', KEYS[n + j], ARGV[a])
  end
  a = a + 1
end
return out
"""

# KEYS: counter. ARGV: epoch, settled (from PostgreSQL), expire-at (Unix seconds).
INIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[1], 's', ARGV[2], 'r', '0')
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return 1
"""
