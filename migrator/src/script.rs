//! The Lua scripts that move and restore journaled keys atomically, so a live bot writing the
//! same keys can never interleave with half a move. One script call handles a whole batch,
//! each key compared and moved (or restored) on its own, with one answer per key in order.
//! Both declare every key they touch in `KEYS` (as Redis Cluster and Upstash expect).
//!
//! **Move** — checks the source still holds exactly the journaled value (else
//! [`MoveOutcome::Changed`]), refuses a target that exists with a different value unless
//! `overwrite` ([`MoveOutcome::Conflict`]), writes the targets (with the original absolute
//! expiry, unless the rule makes them permanent), adds index members (reporting which were
//! new, so rollback removes only those; an index the move creates expires with its targets),
//! deletes the source unless `keep_source`, and answers [`MoveOutcome::Moved`]. A source
//! already gone whose targets hold the expected values is [`MoveOutcome::Already`] (a crash
//! after the move, before the journal noted it); gone with other targets, `Missing`.
//!
//! **Restore** — refuses ([`RestoreOutcome::TargetChanged`]) when a target no longer holds
//! what the move wrote, unless `force`; otherwise puts back what each target held before the
//! move (or deletes it if it did not exist), removes the index members the move added, and
//! writes the original back exactly (type, value, absolute expiry).
//!
//! **Arguments** are flat strings, not a JSON document: Redis's `cjson.decode` cost ~7 µs per
//! key, more than the move itself (measured in docs/benchmarks.md). A value is `type`, `n`,
//! then its `n` items (a string: the text; a hash: field, value…; a set or list: the members
//! in order; a sorted set: member, score…); an absent time is the empty string. Per move:
//! `source value expire_at flags targets (key value)… indexes (key member)…` with flags
//! `keep_source overwrite` as two `0`/`1` characters. Per restore: `source value expire_at
//! force targets (key value has_previous [previous_value previous_expire_at])… indexes (key
//! member added)…`. Answers are Redis arrays, one per key: `{'moved', added…}`,
//! `{'already'}`, `{'changed'}`, `{'conflict', target}`, `{'missing'}`; `{'restored'}`,
//! `{'target_changed', target}`.

use edgesync_core::store::{Command, Reply, Store, StoreError};

use crate::journal::Entry;
use crate::value::{Stored, TypedValue};

const COMMON: &str = r#"
-- A key's value as the read command of `kind` answers it: nil when absent, false when the key
-- has another type (every moved type reads as a string or a non-empty array).
local function read(key, kind)
  local r
  if kind == 'string' then r = redis.pcall('GET', key)
  elseif kind == 'hash' then r = redis.pcall('HGETALL', key)
  elseif kind == 'set' then r = redis.pcall('SMEMBERS', key)
  elseif kind == 'zset' then r = redis.pcall('ZRANGE', key, 0, -1, 'WITHSCORES')
  else r = redis.pcall('LRANGE', key, 0, -1) end
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
  local i = from
  while i <= to do
    local j = math.min(i + 999, to)
    redis.call(command, key, unpack(items, i, j))
    i = j + 1
  end
end

-- Writes the value whose n items start at ARGV[at]; `existed`: the key may hold something.
local function write(key, kind, at, n, expire_at, existed)
  if kind == 'string' then
    if expire_at then redis.call('SET', key, ARGV[at], 'PXAT', expire_at)
    else redis.call('SET', key, ARGV[at]) end
    return
  end
  if existed then redis.call('DEL', key) end
  if kind == 'hash' then bulk('HSET', key, ARGV, at, at + n - 1)
  elseif kind == 'set' then bulk('SADD', key, ARGV, at, at + n - 1)
  elseif kind == 'list' then bulk('RPUSH', key, ARGV, at, at + n - 1)
  else
    local flat = {}
    for j = at, at + n - 1, 2 do flat[#flat + 1] = ARGV[j + 1]; flat[#flat + 1] = ARGV[j] end
    bulk('ZADD', key, flat, 1, #flat)
  end
  if expire_at then redis.call('PEXPIREAT', key, expire_at) end
end

-- The value starting at ARGV[i]: its type, where its items start, how many, and what follows.
local function value_at(i)
  local n = tonumber(ARGV[i + 1])
  return ARGV[i], i + 2, n, i + 2 + n
end

local function time_at(i)
  if ARGV[i] == '' then return nil end
  return ARGV[i]
end
"#;

const MOVE_MANY: &str = r#"
-- Answers shared by every entry they fit (one table, not one per key).
local ALREADY, CHANGED, MISSING = {'already'}, {'changed'}, {'missing'}
-- The entry being moved, reused across entries (tables per key were a third of the script's
-- own time): per target t, T[4t-3..4t] = key, kind, where its items start, how many; and
-- whether it held something.
local T, existed = {}, {}

local function move_one(i)
  local source = ARGV[i]
  local kind, at, n, next = value_at(i + 1)
  local expire_at = time_at(next)
  local flags = ARGV[next + 1]
  local keep, overwrite = string.byte(flags, 1) == 49, string.byte(flags, 2) == 49
  local count = tonumber(ARGV[next + 2])
  i = next + 3
  for t = 4, 4 * count, 4 do
    local tkind, tat, tn, after = value_at(i + 1)
    T[t - 3], T[t - 2], T[t - 1], T[t] = ARGV[i], tkind, tat, tn
    i = after
  end
  local indexes, index_at = tonumber(ARGV[i]), i + 1
  local after = index_at + 2 * indexes

  local current = read(source, kind)
  if current == nil then
    for t = 4, 4 * count, 4 do
      local held = read(T[t - 3], T[t - 2])
      if not held or not equals(held, T[t - 2], T[t - 1], T[t]) then return MISSING, after end
    end
    return ALREADY, after
  end
  if current == false or not equals(current, kind, at, n) then return CHANGED, after end
  for t = 4, 4 * count, 4 do
    local key = T[t - 3]
    if key == source then
      existed[t] = true
    else
      local held = read(key, T[t - 2])
      existed[t] = held ~= nil
      if held ~= nil and not overwrite and (held == false or not equals(held, T[t - 2], T[t - 1], T[t])) then
        return {'conflict', key}, after
      end
    end
  end
  for t = 4, 4 * count, 4 do
    write(T[t - 3], T[t - 2], T[t - 1], T[t], expire_at, existed[t])
    if T[t - 3] == source then keep = true end
  end
  local answer = {'moved'}
  for x = index_at, after - 1, 2 do
    local key = ARGV[x]
    -- An index created for expiring targets expires with them, or it would outlive them.
    local fresh = expire_at and redis.call('EXISTS', key) == 0
    answer[#answer + 1] = redis.call('SADD', key, ARGV[x + 1])
    if fresh then redis.call('PEXPIREAT', key, expire_at) end
  end
  if not keep then redis.call('DEL', source) end
  return answer, after
end

local answers, i = {}, 1
while i <= #ARGV do
  local answer
  answer, i = move_one(i)
  answers[#answers + 1] = answer
end
return answers
"#;

const RESTORE_MANY: &str = r#"
local RESTORED = {'restored'}
-- The entry being restored, reused across entries: per target t, T[8t-7..8t] = key, kind,
-- where its items start, how many, then the same for what it held before (false when it did
-- not exist) and that value's expiry.
local T = {}

local function restore_one(i)
  local source = ARGV[i]
  local kind, at, n, next = value_at(i + 1)
  local expire_at = time_at(next)
  local force = ARGV[next + 1] == '1'
  local count = tonumber(ARGV[next + 2])
  i = next + 3
  for t = 8, 8 * count, 8 do
    local tkind, tat, tn, after = value_at(i + 1)
    T[t - 7], T[t - 6], T[t - 5], T[t - 4] = ARGV[i], tkind, tat, tn
    if ARGV[after] == '1' then
      local pkind, pat, pn, pnext = value_at(after + 1)
      T[t - 3], T[t - 2], T[t - 1], T[t] = pkind, pat, pn, time_at(pnext)
      i = pnext + 1
    else
      T[t - 3] = false
      i = after + 1
    end
  end
  local indexes, index_at = tonumber(ARGV[i]), i + 1
  local after = index_at + 3 * indexes

  if not force then
    for t = 8, 8 * count, 8 do
      local held = read(T[t - 7], T[t - 6])
      if held ~= nil and (held == false or not equals(held, T[t - 6], T[t - 5], T[t - 4])) then
        return {'target_changed', T[t - 7]}, after
      end
    end
  end
  for t = 8, 8 * count, 8 do
    local key = T[t - 7]
    if key ~= source then
      if T[t - 3] then write(key, T[t - 3], T[t - 2], T[t - 1], T[t], true) else redis.call('DEL', key) end
    end
  end
  for x = index_at, after - 1, 3 do
    if ARGV[x + 2] == '1' then redis.call('SREM', ARGV[x], ARGV[x + 1]) end
  end
  write(source, kind, at, n, expire_at, true)
  return RESTORED, after
end

local answers, i = {}, 1
while i <= #ARGV do
  local answer
  answer, i = restore_one(i)
  answers[#answers + 1] = answer
end
return answers
"#;

/// The scripts' SHA1s once loaded (`SCRIPT LOAD`), so a batch sends `EVALSHA` and its
/// arguments rather than the whole script body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scripts {
    pub move_sha: String,
    pub restore_sha: String,
}

impl Scripts {
    /// Loads both scripts; call again after a `NOSCRIPT` error (Redis restarted or flushed
    /// its script cache).
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let load = |script: &str| Command::new("SCRIPT").arg("LOAD").arg(format!("{COMMON}\n{script}"));
        let replies = store.pipeline(&[load(MOVE_MANY), load(RESTORE_MANY)]).await?;
        let mut shas = replies.into_iter().map(|reply| match reply {
            Ok(reply) => reply
                .into_string()
                .map_err(|detail| StoreError::UnexpectedReply { command: "SCRIPT LOAD".into(), detail }),
            Err(error) => Err(StoreError::Command { command: "SCRIPT LOAD".into(), error }),
        });
        let (Some(move_sha), Some(restore_sha)) = (shas.next(), shas.next()) else {
            return Err(StoreError::UnexpectedReply { command: "SCRIPT LOAD".into(), detail: "no reply".into() });
        };
        Ok(Self { move_sha: move_sha?, restore_sha: restore_sha? })
    }
}

/// True for the error Redis gives when a script is not in its cache.
fn is_noscript(error: &str) -> bool {
    error.starts_with("NOSCRIPT")
}

/// A script call's `reply` — or, when Redis had lost its script cache (a restart, `SCRIPT
/// FLUSH`), the reply of the call built again by `call` after loading the scripts anew. Safe
/// to resend: a move that ran before answers `already`, a restore writes the same original.
pub async fn reloading_if_lost(
    store: &dyn Store,
    reply: Result<Reply, StoreError>,
    scripts: &mut Scripts,
    call: impl Fn(&Scripts) -> Command,
) -> Result<Reply, StoreError> {
    match &reply {
        Err(StoreError::Command { error, .. }) if is_noscript(&error.0) => {
            *scripts = Scripts::load(store).await?;
            store.execute(&call(scripts)).await
        }
        _ => reply,
    }
}

/// What the move script did with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveOutcome {
    /// Moved; per index member, whether it was new.
    Moved { added: Vec<bool> },
    /// The source is gone and the targets hold its conversion: moved before.
    Already,
    /// The source no longer holds the journaled value; nothing was written.
    Changed,
    /// This target holds a different value; nothing was written.
    Conflict { target: String },
    /// The source is gone and the targets do not hold its conversion.
    Missing,
}

/// What the restore script did with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreOutcome {
    Restored,
    /// This target changed after the migration; nothing was written.
    TargetChanged {
        target: String,
    },
}

/// The flat arguments of one call, and the keys it declares.
#[derive(Default)]
struct Arguments {
    keys: Vec<String>,
    argv: Vec<Vec<u8>>,
}

impl Arguments {
    fn text(&mut self, text: &str) {
        self.argv.push(text.as_bytes().to_vec());
    }

    fn key(&mut self, key: &str) {
        self.keys.push(key.to_owned());
        self.text(key);
    }

    fn flag(&mut self, on: bool) {
        self.text(if on { "1" } else { "0" });
    }

    fn count(&mut self, n: usize) {
        self.argv.push(n.to_string().into_bytes());
    }

    fn time(&mut self, at_ms: Option<i64>) {
        self.argv.push(at_ms.map(|ms| ms.to_string().into_bytes()).unwrap_or_default());
    }

    /// `n` pairs (a hash's fields and values, a sorted set's members and scores), flat.
    fn pairs<'a>(&mut self, n: usize, pairs: impl Iterator<Item = (&'a String, &'a String)>) {
        self.count(2 * n);
        for (first, second) in pairs {
            self.text(first);
            self.text(second);
        }
    }

    fn value(&mut self, value: &TypedValue) {
        self.text(value.type_name());
        match value {
            TypedValue::String(text) => {
                self.count(1);
                self.text(text);
            }
            TypedValue::Hash(fields) => self.pairs(fields.len(), fields.iter()),
            TypedValue::Set(members) => {
                self.count(members.len());
                members.iter().for_each(|m| self.text(m));
            }
            TypedValue::Zset(items) => self.pairs(items.len(), items.iter().map(|(member, score)| (member, score))),
            TypedValue::List(items) => {
                self.count(items.len());
                items.iter().for_each(|item| self.text(item));
            }
        }
    }

    fn command(mut self, sha: &str) -> Command {
        self.keys.sort_unstable();
        self.keys.dedup();
        let mut command = Command::new("EVALSHA").arg(sha).arg(self.keys.len());
        for key in self.keys {
            command.push_arg(key);
        }
        for arg in self.argv {
            command.push_arg(arg);
        }
        command
    }
}

/// The moves of journaled entries in one script call; [`move_outcomes`] reads its answer.
pub fn move_many_command(entries: &[Entry], scripts: &Scripts) -> Command {
    let mut args = Arguments::default();
    for entry in entries {
        args.key(&entry.source);
        args.value(&entry.original.value);
        args.time(if entry.drop_expiry { None } else { entry.original.expire_at_ms });
        args.text(match (entry.keep_source, entry.overwrite) {
            (false, false) => "00",
            (false, true) => "01",
            (true, false) => "10",
            (true, true) => "11",
        });
        args.count(entry.targets.len());
        for (key, value) in &entry.targets {
            args.key(key);
            args.value(value);
        }
        args.count(entry.index.len());
        for member in &entry.index {
            args.key(&member.key);
            args.text(&member.member);
        }
    }
    args.command(&scripts.move_sha)
}

/// The restores of journaled entries in one script call; [`restore_outcomes`] reads its
/// answer.
pub fn restore_many_command(entries: &[Entry], force: bool, scripts: &Scripts) -> Command {
    let mut args = Arguments::default();
    for entry in entries {
        args.key(&entry.source);
        args.value(&entry.original.value);
        args.time(entry.original.expire_at_ms);
        args.flag(force);
        args.count(entry.targets.len());
        for (i, (key, value)) in entry.targets.iter().enumerate() {
            args.key(key);
            args.value(value);
            match entry.previous_targets.get(i).and_then(Option::as_ref) {
                Some(Stored { value, expire_at_ms }) => {
                    args.flag(true);
                    args.value(value);
                    args.time(*expire_at_ms);
                }
                None => args.flag(false),
            }
        }
        args.count(entry.index.len());
        for member in &entry.index {
            args.key(&member.key);
            args.text(&member.member);
            args.flag(member.added == Some(true));
        }
    }
    args.command(&scripts.restore_sha)
}

/// One answer per key: `[status, details…]`.
fn answers(reply: Reply, expected: usize) -> Result<Vec<(String, Vec<Reply>)>, String> {
    let Reply::Array(items) = reply else { return Err(format!("script answered {reply:?}")) };
    if items.len() != expected {
        return Err(format!("{} answers for {expected} keys", items.len()));
    }
    items
        .into_iter()
        .map(|item| match item {
            Reply::Array(mut parts) if !parts.is_empty() => {
                let status = parts.remove(0).into_string()?;
                Ok((status, parts))
            }
            other => Err(format!("script answered {other:?} for a key")),
        })
        .collect()
}

fn target_of(details: Vec<Reply>) -> Result<String, String> {
    details.into_iter().next().ok_or_else(|| "no target in the answer".to_owned())?.into_string()
}

/// The answer of a [`move_many_command`] for `expected` entries, in entry order.
pub fn move_outcomes(reply: Reply, expected: usize) -> Result<Vec<MoveOutcome>, String> {
    answers(reply, expected)?
        .into_iter()
        .map(|(status, details)| match status.as_str() {
            "moved" => Ok(MoveOutcome::Moved { added: details.iter().map(|d| *d == Reply::Int(1)).collect() }),
            "already" => Ok(MoveOutcome::Already),
            "changed" => Ok(MoveOutcome::Changed),
            "missing" => Ok(MoveOutcome::Missing),
            "conflict" => Ok(MoveOutcome::Conflict { target: target_of(details)? }),
            other => Err(format!("unknown move status {other:?}")),
        })
        .collect()
}

/// The answer of a [`restore_many_command`] for `expected` entries, in entry order.
pub fn restore_outcomes(reply: Reply, expected: usize) -> Result<Vec<RestoreOutcome>, String> {
    answers(reply, expected)?
        .into_iter()
        .map(|(status, details)| match status.as_str() {
            "restored" => Ok(RestoreOutcome::Restored),
            "target_changed" => Ok(RestoreOutcome::TargetChanged { target: target_of(details)? }),
            other => Err(format!("unknown restore status {other:?}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use edgesync_core::store::{Command, Reply, Store};
    use futures_executor::block_on;

    use super::*;
    use crate::journal::{EntryState, IndexMember};
    use crate::test_redis::TestRedis;
    use crate::value::read_many;

    const FAR: i64 = 4_102_444_800_000; // 2100-01-01, an expiry that never passes in a test

    fn string(text: &str) -> TypedValue {
        TypedValue::String(text.to_owned())
    }

    fn hash(pairs: &[(&str, &str)]) -> TypedValue {
        TypedValue::Hash(pairs.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect::<BTreeMap<_, _>>())
    }

    fn entry(source: &str, original: TypedValue, expire_at_ms: Option<i64>, targets: Vec<(&str, TypedValue)>) -> Entry {
        Entry {
            seq: 0,
            rule: "test".into(),
            source: source.into(),
            original: Stored { value: original, expire_at_ms },
            targets: targets.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            previous_targets: Vec::new(),
            index: Vec::new(),
            keep_source: false,
            overwrite: false,
            drop_expiry: false,
            state: EntryState::Pending,
            note: None,
        }
    }

    fn write(store: &dyn Store, key: &str, value: &TypedValue, expire_at_ms: Option<i64>) {
        let mut commands = value.write_commands(key);
        if let Some(at) = expire_at_ms {
            commands.push(Command::new("PEXPIREAT").arg(key).arg(at));
        }
        block_on(store.pipeline(&commands)).unwrap();
    }

    fn read(store: &dyn Store, key: &str) -> Option<Stored> {
        block_on(read_many(store, &[key.to_owned()])).unwrap().remove(0)
    }

    fn moves(store: &dyn Store, entries: &[Entry]) -> Vec<MoveOutcome> {
        let scripts = block_on(Scripts::load(store)).unwrap();
        let reply = block_on(store.execute(&move_many_command(entries, &scripts))).unwrap();
        move_outcomes(reply, entries.len()).unwrap()
    }

    fn restores(store: &dyn Store, entries: &[Entry], force: bool) -> Vec<RestoreOutcome> {
        let scripts = block_on(Scripts::load(store)).unwrap();
        let reply = block_on(store.execute(&restore_many_command(entries, force, &scripts))).unwrap();
        restore_outcomes(reply, entries.len()).unwrap()
    }

    /// An expiry read back through PTTL: within a second of the one written.
    fn close(read: Option<i64>, written: Option<i64>) -> bool {
        match (read, written) {
            (Some(a), Some(b)) => (a - b).abs() <= 1000,
            (a, b) => a == b,
        }
    }

    #[test]
    fn one_call_answers_each_key_on_its_own_moved_changed_conflict_already_missing() {
        let redis = TestRedis::start();
        let store = redis.store();
        let store = store.as_ref();
        let position = r#"{"side":"long","qty":"1.5"}"#;
        let converted = hash(&[("side", "long"), ("qty", "1.5")]);

        // moved: a string source with an expiry becomes a hash target and an index member.
        write(store, "old:moved", &string(position), Some(FAR));
        let mut moved = entry("old:moved", string(position), Some(FAR), vec![("new:moved", converted.clone())]);
        moved.index = vec![IndexMember { key: "new:index".into(), member: "moved".into(), added: None }];
        // changed: a live writer changed the source after it was journaled.
        write(store, "old:changed", &string(r#"{"side":"long","qty":"2"}"#), None);
        let changed = entry("old:changed", string(position), None, vec![("new:changed", converted.clone())]);
        // conflict: the target holds something else.
        write(store, "old:conflict", &string(position), None);
        write(store, "new:conflict", &hash(&[("qty", "9")]), None);
        let conflict = entry("old:conflict", string(position), None, vec![("new:conflict", converted.clone())]);
        // already: moved before (the source is gone, the target holds the conversion).
        write(store, "new:already", &converted, None);
        let already = entry("old:already", string(position), None, vec![("new:already", converted.clone())]);
        // missing: the source is gone and the target does not hold its conversion.
        let missing = entry("old:missing", string(position), None, vec![("new:missing", converted.clone())]);

        let outcomes = moves(store, &[moved, changed, conflict, already, missing]);
        assert_eq!(
            outcomes,
            vec![
                MoveOutcome::Moved { added: vec![true] },
                MoveOutcome::Changed,
                MoveOutcome::Conflict { target: "new:conflict".into() },
                MoveOutcome::Already,
                MoveOutcome::Missing,
            ]
        );
        let target = read(store, "new:moved").expect("the target was written");
        assert_eq!(target.value, converted);
        assert!(close(target.expire_at_ms, Some(FAR)), "the original's expiry: {:?}", target.expire_at_ms);
        assert_eq!(read(store, "old:moved"), None, "the source is deleted");
        let index = read(store, "new:index").expect("the index was created");
        assert_eq!(index.value, TypedValue::Set(BTreeSet::from(["moved".to_owned()])));
        assert!(close(index.expire_at_ms, Some(FAR)), "a new index expires with its targets");
        // Nothing of the refused moves was written or deleted.
        assert_eq!(read(store, "old:changed").unwrap().value, string(r#"{"side":"long","qty":"2"}"#));
        assert_eq!(read(store, "new:changed"), None);
        assert_eq!(read(store, "old:conflict").unwrap().value, string(position));
        assert_eq!(read(store, "new:conflict").unwrap().value, hash(&[("qty", "9")]));
        assert_eq!(read(store, "new:missing"), None);
    }

    #[test]
    fn overwrite_replaces_a_conflicting_target_and_keep_source_keeps_the_source() {
        let redis = TestRedis::start();
        let store = redis.store();
        let store = store.as_ref();
        write(store, "old:a", &string("1"), None);
        write(store, "new:a", &string("other"), None);
        let mut overwrite = entry("old:a", string("1"), None, vec![("new:a", string("1"))]);
        overwrite.overwrite = true;
        write(store, "old:b", &string("2"), Some(FAR));
        let mut keep = entry("old:b", string("2"), Some(FAR), vec![("new:b", string("2"))]);
        keep.keep_source = true;
        keep.drop_expiry = true;
        let outcomes = moves(store, &[overwrite, keep]);
        assert_eq!(outcomes, vec![MoveOutcome::Moved { added: vec![] }, MoveOutcome::Moved { added: vec![] }]);
        assert_eq!(read(store, "new:a").unwrap().value, string("1"));
        assert_eq!(read(store, "old:a"), None);
        assert_eq!(read(store, "old:b").unwrap().value, string("2"), "kept");
        assert_eq!(read(store, "new:b").unwrap().expire_at_ms, None, "the rule made the target permanent");
    }

    #[test]
    fn every_type_moves_and_restores_exactly() {
        let redis = TestRedis::start();
        let store = redis.store();
        let store = store.as_ref();
        let values = [
            string("text with spaces and \"quotes\""),
            hash(&[("a", "1"), ("b", "")]),
            TypedValue::Set(["x", "y", "z"].iter().map(|s| s.to_string()).collect()),
            TypedValue::Zset(vec![("m2".into(), "-3".into()), ("m1".into(), "1.5".into())]), // as ZRANGE reads it
            TypedValue::List(vec!["b".into(), "a".into(), "b".into()]),
        ];
        let mut entries = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let source = format!("old:{i}");
            let expire = (i % 2 == 0).then_some(FAR);
            write(store, &source, value, expire);
            let mut e = entry(&source, value.clone(), expire, vec![]);
            e.targets = vec![(format!("new:{i}"), value.clone())];
            e.previous_targets = vec![None];
            e.index = vec![IndexMember { key: "new:index".into(), member: format!("m{i}"), added: None }];
            entries.push(e);
        }
        // One target existed before (with --overwrite): rollback puts it back.
        write(store, "new:0", &string("before"), None);
        entries[0].overwrite = true;
        entries[0].previous_targets = vec![Some(Stored { value: string("before"), expire_at_ms: None })];
        // One index member existed before: rollback leaves it.
        write(store, "new:index", &TypedValue::Set(BTreeSet::from(["m4".to_owned()])), None);

        let outcomes = moves(store, &entries);
        for (i, outcome) in outcomes.iter().enumerate() {
            assert_eq!(*outcome, MoveOutcome::Moved { added: vec![i != 4] }, "entry {i}");
            assert_eq!(read(store, &format!("new:{i}")).unwrap().value, values[i], "target {i}");
            assert_eq!(read(store, &format!("old:{i}")), None, "source {i}");
        }
        for (entry, outcome) in entries.iter_mut().zip(&outcomes) {
            let MoveOutcome::Moved { added } = outcome else { unreachable!() };
            entry.index[0].added = Some(added[0]);
        }

        entries.reverse(); // rollback order: newest first
        assert!(restores(store, &entries, false).iter().all(|o| *o == RestoreOutcome::Restored));
        for (i, value) in values.iter().enumerate() {
            let original = read(store, &format!("old:{i}")).expect("restored");
            assert_eq!(original.value, *value, "original {i}");
            assert!(close(original.expire_at_ms, (i % 2 == 0).then_some(FAR)), "expiry of {i}");
        }
        assert_eq!(read(store, "new:0").unwrap().value, string("before"), "the previous target is back");
        for i in 1..values.len() {
            assert_eq!(read(store, &format!("new:{i}")), None, "target {i} removed");
        }
        assert_eq!(
            read(store, "new:index").unwrap().value,
            TypedValue::Set(BTreeSet::from(["m4".to_owned()])),
            "only the members the move added are removed"
        );
    }

    #[test]
    fn restore_refuses_a_target_changed_since_the_move_unless_forced() {
        let redis = TestRedis::start();
        let store = redis.store();
        let store = store.as_ref();
        write(store, "old:a", &string("1"), None);
        let mut moved = entry("old:a", string("1"), None, vec![("new:a", string("1"))]);
        moved.previous_targets = vec![None];
        assert_eq!(moves(store, std::slice::from_ref(&moved)), vec![MoveOutcome::Moved { added: vec![] }]);
        write(store, "new:a", &string("edited by the new bot"), None);

        let refused = restores(store, std::slice::from_ref(&moved), false);
        assert_eq!(refused, vec![RestoreOutcome::TargetChanged { target: "new:a".into() }]);
        assert_eq!(read(store, "old:a"), None, "nothing restored");
        assert_eq!(read(store, "new:a").unwrap().value, string("edited by the new bot"));

        assert_eq!(restores(store, &[moved], true), vec![RestoreOutcome::Restored]);
        assert_eq!(read(store, "old:a").unwrap().value, string("1"));
        assert_eq!(read(store, "new:a"), None);
    }

    #[test]
    fn a_lost_script_cache_is_loaded_again_and_the_call_resent() {
        let redis = TestRedis::start();
        let store = redis.store();
        let store = store.as_ref();
        write(store, "s", &string("v"), None);
        let entries = vec![entry("s", string("v"), None, vec![("t", string("v"))])];
        let mut scripts = block_on(Scripts::load(store)).unwrap();
        block_on(store.execute(&Command::new("SCRIPT").arg("FLUSH"))).unwrap();
        let lost = block_on(store.execute(&move_many_command(&entries, &scripts)));
        assert!(matches!(&lost, Err(StoreError::Command { error, .. }) if is_noscript(&error.0)), "{lost:?}");
        let reply = block_on(reloading_if_lost(store, lost, &mut scripts, |s| move_many_command(&entries, s))).unwrap();
        assert_eq!(move_outcomes(reply, 1).unwrap(), vec![MoveOutcome::Moved { added: Vec::new() }]);
        assert_eq!(read(store, "t").map(|stored| stored.value), Some(string("v")));
        assert_eq!(read(store, "s"), None);
    }

    #[test]
    fn an_unknown_answer_is_an_error_not_a_guess() {
        assert!(move_outcomes(Reply::Array(vec![Reply::Array(vec![Reply::bulk("exploded")])]), 1).is_err());
        assert!(move_outcomes(Reply::Array(vec![]), 1).is_err(), "one answer per key");
        assert!(restore_outcomes(Reply::Int(1), 1).is_err());
    }
}
