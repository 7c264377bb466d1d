-- Moves a batch of journaled keys, each compared and moved on its own; one answer string
-- per entry. Runs after common.lua; arguments and answers are described in script.rs.

-- The entry being moved, reused across entries (tables per key were a third of the script's
-- own time): per target t, T[5t-4..5t] = key, kind, where its items start, how many, whether
-- it is the source's value unchanged; and whether it held something.
local T, existed = {}, {}

local function move_one()
  local shape = ARGV[i]
  i = i + 1
  -- The shape's fields read inline: a Lua call per field would cost more than this arithmetic
  -- (measured: 4 % of Redis's time on a batch).
  local keep, overwrite, has_expiry, persist, code, n1, n2, n3, n4, c1, c2, c3, c4 = byte(shape, 1, 13)
  local n = ((n1 * 256 + n2) * 256 + n3) * 256 + n4
  local count = ((c1 * 256 + c2) * 256 + c3) * 256 + c4
  local p = 14
  local delete_source, overwrite = keep == 0, overwrite == 1
  local expire_at = expiry(has_expiry)
  local source, kind, at = KEYS[k], KINDS[code], i
  k, i = k + 1, i + n
  for t = 5, 5 * count, 5 do
    T[t - 4] = KEYS[k]
    k = k + 1
    local tcode, a, b, c, d = byte(shape, p, p + 4)
    p = p + 5
    if tcode == 0 then
      T[t - 3], T[t - 2], T[t - 1], T[t] = kind, at, n, true
    else
      local tn = ((a * 256 + b) * 256 + c) * 256 + d
      T[t - 3], T[t - 2], T[t - 1], T[t] = KINDS[tcode], i, tn, false
      i = i + tn
    end
  end
  local indexes = count_at(shape, p)
  local index_key, member = k, i
  k, i = k + indexes, i + indexes

  if CLUSTER and not everywhere_here(source, T, 5, count, index_key, indexes) then return 'elsewhere' end
  local current = read(source, kind)
  if current == nil then
    for t = 5, 5 * count, 5 do
      local held = read(T[t - 4], T[t - 3])
      if not held or not equals(held, T[t - 3], T[t - 2], T[t - 1]) then return 'missing' end
    end
    return 'already'
  end
  if current == false or not equals(current, kind, at, n) then return 'changed' end
  -- A rename onto a target that does not exist needs no check first: RENAMENX is both. Not on
  -- a cluster: one command may not span two slots, even in a script allowed to.
  local renaming = not CLUSTER and count == 1 and T[5] and T[1] ~= source and delete_source
  local renamed = renaming and rcall('RENAMENX', source, T[1]) == 1
  if not renamed then
    for t = 5, 5 * count, 5 do
      local key = T[t - 4]
      if key == source then
        existed[t] = true
      else
        -- Most targets do not exist yet: EXISTS answers that for less than a read's reply.
        local held = nil
        if rcall('EXISTS', key) == 1 then held = read(key, T[t - 3]) end
        existed[t] = held ~= nil
        if held ~= nil and not overwrite and (held == false or not equals(held, T[t - 3], T[t - 2], T[t - 1])) then
          return 'conflict ' .. t / 5
        end
      end
    end
    if renaming then
      rcall('RENAME', source, T[1])
      renamed = true
    else
      for t = 5, 5 * count, 5 do
        write(T[t - 4], T[t - 3], T[t - 2], T[t - 1], expire_at, existed[t])
        if T[t - 4] == source then delete_source = false end
      end
    end
  end
  if renamed then
    if persist == 1 then rcall('PERSIST', T[1]) end
    delete_source = false
  end
  local answer = 'moved'
  for x = 0, indexes - 1 do
    local key = KEYS[index_key + x]
    -- An index created for expiring targets expires with them, or it would outlive them.
    local fresh = expire_at and rcall('EXISTS', key) == 0
    -- Literal digits: turning the reply's number into text goes through printf (2 % of Redis's
    -- time on a batch).
    answer = answer .. (rcall('SADD', key, ARGV[member + x]) == 1 and ' 1' or ' 0')
    if fresh then rcall('PEXPIREAT', key, expire_at) end
  end
  if delete_source then rcall('DEL', source) end
  return answer
end

local answers, answered, last = {}, 0, #ARGV
while i <= last do answered = answered + 1; answers[answered] = move_one() end
return answers
