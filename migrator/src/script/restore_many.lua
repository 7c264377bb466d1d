-- Restores a batch of moved keys to their journaled originals, each checked on its own; one
-- answer string per entry. Runs after common.lua; arguments in script.rs.

-- The entry being restored, reused across entries: per target t, T[9t-8..9t] = key, kind,
-- where its items start, how many, whether it is the original unchanged, then the same for
-- what it held before (kind false when it did not exist) and that value's expiry.
local T = {}

local function restore_one()
  local shape = ARGV[i]
  i = i + 1
  -- Read inline, as in the move: a call per field would cost more than the arithmetic.
  local force, pending, has_expiry, code, n1, n2, n3, n4, c1, c2, c3, c4 = byte(shape, 1, 12)
  local n = ((n1 * 256 + n2) * 256 + n3) * 256 + n4
  local count = ((c1 * 256 + c2) * 256 + c3) * 256 + c4
  local p = 13
  local expire_at = expiry(has_expiry)
  local source, kind, at = KEYS[k], KINDS[code], i
  k, i = k + 1, i + n
  for t = 9, 9 * count, 9 do
    T[t - 8] = KEYS[k]
    k = k + 1
    local tcode, a, b, c, d, has_previous = byte(shape, p, p + 5)
    if tcode == 0 then
      T[t - 7], T[t - 6], T[t - 5], T[t - 4] = kind, at, n, true
    else
      local tn = ((a * 256 + b) * 256 + c) * 256 + d
      T[t - 7], T[t - 6], T[t - 5], T[t - 4] = KINDS[tcode], i, tn, false
      i = i + tn
    end
    p = p + 6
    if has_previous == 1 then
      local pkind, pat, pn, next = value_in(shape, p, kind, at, n)
      T[t - 3], T[t - 2], T[t - 1], T[t] = pkind, pat, pn, expiry(byte(shape, next))
      p = next + 1
    else
      T[t - 3] = false
    end
  end
  local indexes = count_at(shape, p)
  local index_key, member, added = k, i, p + 4
  k, i = k + indexes, i + indexes

  if CLUSTER and not everywhere_here(source, T, 9, count, index_key, indexes) then return 'elsewhere' end
  local present = false
  if force == 0 then
    for t = 9, 9 * count, 9 do
      local held = read(T[t - 8], T[t - 7])
      if held ~= nil and (held == false or not equals(held, T[t - 7], T[t - 6], T[t - 5])) then
        return 'target_changed ' .. t / 9
      end
      present = held ~= nil
    end
  end
  -- A single target checked to hold the original unchanged becomes the source again as is.
  -- An entry still pending may never have been moved, and its source may hold what a live
  -- writer put there since: its original goes back only where the source is gone (unless a
  -- target is the source itself, converted in place).
  local in_place = false
  for t = 9, 9 * count, 9 do
    if T[t - 8] == source then in_place = true end
  end
  local keep_source = pending == 1 and not in_place and rcall('EXISTS', source) == 1
  local renamed = not CLUSTER and not keep_source and present and count == 1 and T[5] and T[1] ~= source
  if renamed then rcall('RENAME', T[1], source) end
  for t = 9, 9 * count, 9 do
    local key = T[t - 8]
    if key ~= source then
      if T[t - 3] then write(key, T[t - 3], T[t - 2], T[t - 1], T[t], not renamed)
      elseif not renamed then rcall('DEL', key) end
    end
  end
  for x = 0, indexes - 1 do
    if byte(shape, added + x) == 1 then rcall('SREM', KEYS[index_key + x], ARGV[member + x]) end
  end
  if keep_source then -- left as the writer made it
  elseif not renamed then write(source, kind, at, n, expire_at, true)
  elseif expire_at then rcall('PEXPIREAT', source, expire_at)
  else rcall('PERSIST', source) end
  return 'restored'
end

local answers, answered, last = {}, 0, #ARGV
while i <= last do answered = answered + 1; answers[answered] = restore_one() end
return answers
