-- The steps of a move or a restore whose keys live on different nodes of a Redis Cluster, one
-- call per node with every step of a batch that touches that node; one answer per step. Runs
-- after common.lua; the protocol that orders the steps is in cluster/moves.rs, the arguments in
-- script.rs. Each step touches one key, KEYS[k], and is safe to run again.

local PUT, TAKE, UNPUT, ADD, REMOVE, CHECK, WRITE, IS_MEMBER = 1, 2, 3, 4, 5, 6, 7, 8

-- A value described in the shape at p (type, count) whose items come next in ARGV.
local function value_at(shape, p)
  local code = byte(shape, p)
  local n = count_at(shape, p + 1)
  local at = i
  i = i + n
  return KINDS[code], at, n, p + 5
end

-- Writes a target only if it is absent or already holds the value (a resumed run), unless
-- `overwrite`.
local function put(key, shape)
  local overwrite, has_expiry = byte(shape, 2, 3)
  local expire_at = expiry(has_expiry)
  local kind, at, n = value_at(shape, 4)
  local held = nil
  if rcall('EXISTS', key) == 1 then held = read(key, kind) end
  if held ~= nil and held ~= false and equals(held, kind, at, n) then return 'equal' end
  if held ~= nil and overwrite == 0 then return 'conflict' end
  write(key, kind, at, n, expire_at, held ~= nil)
  return 'written'
end

-- Deletes the source (or writes its in-place conversion over it) only if it still holds the
-- journaled original.
local function take(key, shape)
  local keep = byte(shape, 2)
  local kind, at, n, p = value_at(shape, 3)
  local replace, rkind, rat, rn = byte(shape, p), nil, nil, nil
  if replace == 1 then rkind, rat, rn, p = value_at(shape, p + 1) else p = p + 1 end
  local expire_at = expiry(byte(shape, p))
  local current = read(key, kind)
  if current == nil then return 'missing' end
  if current == false or not equals(current, kind, at, n) then
    -- Already its in-place conversion: a run that crashed after this step.
    if replace == 1 then
      local now = read(key, rkind)
      if now and equals(now, rkind, rat, rn) then return 'taken' end
    end
    return 'changed'
  end
  if replace == 1 then
    write(key, rkind, rat, rn, expire_at, true)
  elseif keep == 0 then
    rcall('DEL', key)
  else
    return 'kept'
  end
  return 'taken'
end

-- Takes back a value this run wrote: puts back what the key held before (or deletes it) if it
-- still holds what was written — or whatever it holds, when `force`.
local function unput(key, shape)
  local force = byte(shape, 2)
  local kind, at, n, p = value_at(shape, 3)
  local has_previous = byte(shape, p)
  local pkind, pat, pn, pexpire = nil, nil, nil, nil
  if has_previous == 1 then
    pkind, pat, pn, p = value_at(shape, p + 1)
    pexpire = expiry(byte(shape, p))
  end
  local held = nil
  if rcall('EXISTS', key) == 1 then held = read(key, kind) end
  if held ~= nil and held ~= false and not equals(held, kind, at, n) then held = false end
  if held == false and has_previous == 1 then
    local before = read(key, pkind)
    if before and equals(before, pkind, pat, pn) then return 'removed' end
  end
  if held == false and force == 0 then return 'changed' end
  if has_previous == 1 then
    write(key, pkind, pat, pn, pexpire, held ~= nil)
  elseif held ~= nil then
    rcall('DEL', key)
  else
    return 'absent'
  end
  return 'removed'
end

local function step()
  local shape = ARGV[i]
  i = i + 1
  local key = KEYS[k]
  k = k + 1
  local op = byte(shape, 1)
  -- The arguments are consumed before any answer, so the next step starts in the right place.
  if op == PUT then
    if not here(key) then expiry(byte(shape, 3)); value_at(shape, 4); return 'elsewhere' end
    return put(key, shape)
  elseif op == TAKE then
    if not here(key) then
      local _, _, _, p = value_at(shape, 3)
      if byte(shape, p) == 1 then _, _, _, p = value_at(shape, p + 1) else p = p + 1 end
      expiry(byte(shape, p))
      return 'elsewhere'
    end
    return take(key, shape)
  elseif op == UNPUT then
    if not here(key) then
      local _, _, _, p = value_at(shape, 3)
      if byte(shape, p) == 1 then _, _, _, p = value_at(shape, p + 1); expiry(byte(shape, p)) end
      return 'elsewhere'
    end
    return unput(key, shape)
  elseif op == ADD then
    local member = ARGV[i]
    i = i + 1
    local expire_at = expiry(byte(shape, 2))
    if not here(key) then return 'elsewhere' end
    local fresh = expire_at and rcall('EXISTS', key) == 0
    local added = rcall('SADD', key, member) == 1
    if fresh then rcall('PEXPIREAT', key, expire_at) end
    return added and '1' or '0'
  elseif op == REMOVE then
    local member = ARGV[i]
    i = i + 1
    if not here(key) then return 'elsewhere' end
    rcall('SREM', key, member)
    return 'removed'
  elseif op == IS_MEMBER then
    local member = ARGV[i]
    i = i + 1
    if not here(key) then return 'elsewhere' end
    return rcall('SISMEMBER', key, member) == 1 and '1' or '0'
  elseif op == CHECK then
    local kind, at, n = value_at(shape, 2)
    if not here(key) then return 'elsewhere' end
    local held = read(key, kind)
    if held == nil then return 'absent' end
    if held ~= false and equals(held, kind, at, n) then return 'equal' end
    return 'differs'
  elseif op == WRITE then
    local kind, at, n, p = value_at(shape, 2)
    local expire_at = expiry(byte(shape, p))
    if not here(key) then return 'elsewhere' end
    local exists = rcall('EXISTS', key) == 1
    if exists and byte(shape, p + 1) == 1 then return 'kept' end
    write(key, kind, at, n, expire_at, exists)
    return 'written'
  end
  return 'unknown'
end

local answers, answered, last = {}, 0, #ARGV
while i <= last do answered = answered + 1; answers[answered] = step() end
return answers
