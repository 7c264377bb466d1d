-- What the move and restore scripts share: reading, comparing and writing typed values,
-- and walking the binary shape and ARGV. Loaded in front of each (see script.rs).

local KINDS = {'string', 'hash', 'set', 'zset', 'list'}
-- Globals bound to locals once per call: every use of a global is a table lookup.
local KEYS, ARGV = KEYS, ARGV
-- On a Redis Cluster a call is made per node and declares no key (they span slots; the
-- script runs with `allow-cross-slot-keys`): its keys come first in ARGV, after their count.
local CLUSTER = #KEYS == 0
if CLUSTER then
  local keys, args, n = {}, {}, tonumber(ARGV[1])
  for j = 1, n do keys[j] = ARGV[j + 1] end
  for j = n + 2, #ARGV do args[j - n - 1] = ARGV[j] end
  KEYS, ARGV = keys, args
end
local rcall, rpcall, byte, min, unpack, type = redis.call, redis.pcall, string.byte, math.min, unpack, type
-- Cursors into KEYS and ARGV, moved forward entry by entry.
local k, i = 1, 1

-- Whether `key` is served by this node: on a cluster a key of a slot that moved (a failover,
-- resharding) answers an error, and a script must find that out before it writes anything.
local function here(key)
  return type(rpcall('EXISTS', key)) ~= 'table'
end

-- Whether every key of an entry is served here: its source, its `count` targets (every
-- `stride`-th slot of T holds one) and its index keys, KEYS[index_key ...].
local function everywhere_here(source, T, stride, count, index_key, indexes)
  if not here(source) then return false end
  for t = stride, stride * count, stride do
    if not here(T[t - stride + 1]) then return false end
  end
  for x = 0, indexes - 1 do
    if not here(KEYS[index_key + x]) then return false end
  end
  return true
end

-- A key's value as the read command of `kind` answers it: nil when absent, false when the key
-- has another type (every moved type reads as a string or a non-empty array).
local function read(key, kind)
  local r
  if kind == 'string' then r = rpcall('GET', key)
  elseif kind == 'hash' then r = rpcall('HGETALL', key)
  elseif kind == 'set' then r = rpcall('SMEMBERS', key)
  -- Ranges as text: a Lua number argument is formatted through printf on every call.
  elseif kind == 'zset' then r = rpcall('ZRANGE', key, '0', '-1', 'WITHSCORES')
  else r = rpcall('LRANGE', key, '0', '-1') end
  if type(r) == 'table' then
    if r['err'] then return false end
    if #r == 0 then return nil end
  elseif not r then return nil end
  return r
end

-- Whether a read equals the value whose n items start at ARGV[at].
local function equals(current, kind, at, n)
  if kind == 'string' then return current == ARGV[at] end
  if #current ~= n then return false end
  -- Item by item first: a list must match so, and a hash, set or sorted set the migrator
  -- wrote itself reads back in the order it was written; only otherwise build a lookup.
  local in_order = true
  for j = 1, n do
    if current[j] ~= ARGV[at + j - 1] then in_order = false; break end
  end
  if in_order or kind == 'list' then return in_order end
  if kind == 'set' then
    local want = {}
    for j = at, at + n - 1 do want[ARGV[j]] = true end
    for _, m in ipairs(current) do if not want[m] then return false end end
    return true
  end
  local want = {}
  for j = at, at + n - 1, 2 do want[ARGV[j]] = ARGV[j + 1] end
  for j = 1, n, 2 do
    local w = want[current[j]]
    if w == nil then return false end
    if kind == 'zset' then
      if tonumber(w) ~= tonumber(current[j + 1]) then return false end
    elseif w ~= current[j + 1] then return false end
  end
  return true
end

-- One call per 1000 arguments rather than one per field or member (each redis.call costs
-- more than the command it runs); chunks stay even, so pairs never split.
local function bulk(command, key, items, from, to)
  local j = from
  while j <= to do
    local last = min(j + 999, to)
    rcall(command, key, unpack(items, j, last))
    j = last + 1
  end
end

-- Writes the value whose n items start at ARGV[at]; `existed`: the key may hold something.
local function write(key, kind, at, n, expire_at, existed)
  if kind == 'string' then
    if expire_at then rcall('SET', key, ARGV[at], 'PXAT', expire_at)
    else rcall('SET', key, ARGV[at]) end
    return
  end
  if existed then rcall('DEL', key) end
  if kind == 'hash' then bulk('HSET', key, ARGV, at, at + n - 1)
  elseif kind == 'set' then bulk('SADD', key, ARGV, at, at + n - 1)
  elseif kind == 'list' then bulk('RPUSH', key, ARGV, at, at + n - 1)
  else
    local flat = {}
    for j = at, at + n - 1, 2 do flat[#flat + 1] = ARGV[j + 1]; flat[#flat + 1] = ARGV[j] end
    bulk('ZADD', key, flat, 1, #flat)
  end
  if expire_at then rcall('PEXPIREAT', key, expire_at) end
end

-- The expiry that follows a shape when it says there is one.
local function expiry(has)
  if has == 0 then return nil end
  i = i + 1
  return ARGV[i - 1]
end

-- The four-byte count at p in a shape.
local function count_at(shape, p)
  local a, b, c, d = byte(shape, p, p + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- A value in the shape at p: its kind, where its items start in ARGV, how many, and the
-- shape's next position. Type 0 is the source's value (kind, at, n), whose items are not
-- sent twice; `same` says so.
local function value_in(shape, p, kind, at, n)
  local code = byte(shape, p)
  if code == 0 then return kind, at, n, p + 5, true end
  local count = count_at(shape, p + 1)
  i = i + count
  return KINDS[code], i - count, count, p + 5, false
end
