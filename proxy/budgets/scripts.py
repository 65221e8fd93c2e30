"""The Lua scripts: each runs atomically in Redis, so concurrent requests cannot interleave.

Budget counters are hashes {e: epoch, s: settled nano-USD, r: reserved nano-USD}; the plan's
request counter uses the same shape with requests as the unit. Rate-limit windows are plain
integers per minute. Numbers are compared as Lua doubles: exact below 2**53 (9 million USD in
nano-USD); arithmetic on the stored values is done by Redis in 64-bit integers.
"""

# KEYS: generation, counters (n), windows (m).
# ARGV: generation, n, m, lease-only, share, per counter (limit, amount, block, unit, lease),
#       per window (limit, amount, ttl, unit, lease).
# Reserves `amount` on every key, all or nothing, plus a lease for the caller's process: up to
# `lease` more, at most 1/share of what the key has left, nothing if less than one `unit` (one
# more request of the kind). Lease-only (amounts 0) never refuses and skips missing counters.
# -> {1, epoch, lease per counter..., lease per window...} admitted | {-2} stale rules
#    | {-1, i} counter i missing (rebuild it) | {0, i, settled, reserved} counter i would be
#    exceeded | {2, j} window j is full
RESERVE = """
local gen = redis.call('GET', KEYS[1]) or '0'
if gen ~= ARGV[1] then return {-2} end
local n = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
local only = ARGV[4] == '1'
local share = tonumber(ARGV[5])
local function lease(left, unit, wanted)
  local grant = math.min(wanted, math.floor(left / share))
  if grant < unit or grant < 1 then return 0 end
  return grant
end
local grants = {}
local epochs = {}
local a = 6
for i = 1, n do
  local v = redis.call('HMGET', KEYS[1 + i], 'e', 's', 'r')
  if not v[1] then
    if not only then return {-1, i} end
    epochs[i] = ''
    grants[i] = 0
  else
    local left = tonumber(ARGV[a]) - tonumber(v[2]) - tonumber(v[3]) - tonumber(ARGV[a + 1])
    if ARGV[a + 2] == '1' then
      if left < 0 and not only then return {0, i, v[2], v[3]} end
      grants[i] = lease(left, tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]))
    else
      grants[i] = tonumber(ARGV[a + 4])
    end
    epochs[i] = v[1]
  end
  a = a + 5
end
for j = 1, m do
  local used = tonumber(redis.call('GET', KEYS[1 + n + j]) or '0')
  local limit = tonumber(ARGV[a])
  if not only and used > 0 and used + tonumber(ARGV[a + 1]) > limit then return {2, j} end
  grants[n + j] = lease(limit - used - tonumber(ARGV[a + 1]), tonumber(ARGV[a + 3]),
    tonumber(ARGV[a + 4]))
  a = a + 5
end
local out = {1}
a = 6
for i = 1, n do
  if epochs[i] ~= '' then
    redis.call('HINCRBY', KEYS[1 + i], 'r', tonumber(ARGV[a + 1]) + grants[i])
  end
  out[#out + 1] = epochs[i]
  out[#out + 1] = grants[i]
  a = a + 5
end
for j = 1, m do
  local add = tonumber(ARGV[a + 1]) + grants[n + j]
  if add > 0 or not only then
    redis.call('INCRBY', KEYS[1 + n + j], add)
    redis.call('EXPIRE', KEYS[1 + n + j], ARGV[a + 2])
  end
  out[#out + 1] = grants[n + j]
  a = a + 5
end
return out
"""

# KEYS: counters (n), windows (m).
# ARGV: n, m, per counter (epoch, -reserved, actual), per window (actual - reserved).
# Also gives back a lease nobody used: -unused as the reservation, 0 as the actual.
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
