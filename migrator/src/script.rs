//! The Lua scripts that move and restore one key atomically, so a live bot writing the same
//! keys can never interleave with half a move. Both take one JSON spec (`ARGV[1]`) and declare
//! every key they touch in `KEYS` (as Redis Cluster and Upstash expect).
//!
//! **Move** — one source per `move_one` call; a batch of them runs in one script call
//! ([`move_many_command`], answers in order), each compared and moved on its own — checks
//! the source still holds exactly the journaled value (else `changed`),
//! refuses a target that exists with a different value unless `overwrite` (`conflict`),
//! writes the targets (with the original absolute expiry, `PEXPIREAT`, unless the rule makes
//! them permanent), adds index members (reporting which were new, so rollback removes only
//! those; an index the move creates expires with its targets), deletes the source unless
//! `keep_source`, and answers `ok`. A source already gone whose targets hold the expected
//! values answers `already` (a crash after the move, before the journal noted it).
//!
//! **Restore** — refuses (`target_changed`) when a target no longer holds what the move wrote,
//! unless `force`; otherwise puts back what each target held before the move (or deletes it
//! if it did not exist), removes the index members the move added, and writes the original
//! back exactly (type, value, `PEXPIREAT`).

use edgesync_core::store::{Command, Reply, Store, StoreError};
use serde::Serialize;
use serde_json::{json, Value};

use crate::journal::Entry;
use crate::value::TypedValue;

const COMMON: &str = r#"
local function read(key, kind)
  local actual = redis.call('TYPE', key)['ok']
  if actual == 'none' then return nil end
  if actual ~= kind then return false end
  if kind == 'string' then return redis.call('GET', key) end
  local m = {}
  if kind == 'hash' then
    local r = redis.call('HGETALL', key)
    for i = 1, #r, 2 do m[r[i]] = r[i + 1] end
  elseif kind == 'set' then
    for _, v in ipairs(redis.call('SMEMBERS', key)) do m[v] = true end
  elseif kind == 'zset' then
    local r = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    for i = 1, #r, 2 do m[r[i]] = tonumber(r[i + 1]) end
  elseif kind == 'list' then
    return redis.call('LRANGE', key, 0, -1)
  end
  return m
end

local function expected(v)
  local kind, value = v['type'], v['value']
  if kind == 'string' then return value end
  local m = {}
  if kind == 'hash' then m = value
  elseif kind == 'set' then for _, x in ipairs(value) do m[x] = true end
  elseif kind == 'zset' then for _, p in ipairs(value) do m[p[1]] = tonumber(p[2]) end
  elseif kind == 'list' then return value end
  return m
end

local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= 'table' then return a == b end
  for k, v in pairs(a) do if b[k] ~= v then return false end end
  for k, v in pairs(b) do if a[k] ~= v then return false end end
  return true
end

local function holds(key, v)
  local current = read(key, v['type'])
  return current ~= nil and current ~= false and same(current, expected(v))
end

-- One call per 1000 arguments rather than one per field or member (each redis.call costs
-- more than the command it runs); chunks stay even, so field/value pairs never split.
local function bulk(command, key, items)
  local i, n = 1, #items
  while i <= n do
    local j = math.min(i + 999, n)
    redis.call(command, key, unpack(items, i, j))
    i = j + 1
  end
end

local function write(key, v, expire_at)
  redis.call('DEL', key)
  local kind, value = v['type'], v['value']
  if kind == 'string' then redis.call('SET', key, value)
  elseif kind == 'hash' then
    local flat = {}
    for f, x in pairs(value) do flat[#flat + 1] = f; flat[#flat + 1] = x end
    bulk('HSET', key, flat)
  elseif kind == 'set' then bulk('SADD', key, value)
  elseif kind == 'zset' then
    local flat = {}
    for _, p in ipairs(value) do flat[#flat + 1] = p[2]; flat[#flat + 1] = p[1] end
    bulk('ZADD', key, flat)
  elseif kind == 'list' then bulk('RPUSH', key, value)
  end
  if expire_at ~= cjson.null and expire_at ~= nil then redis.call('PEXPIREAT', key, expire_at) end
end
"#;

/// The move of one source, as a function both scripts below call.
const MOVE_ONE: &str = r#"
local function move_one(spec)
  local source = spec['source']
  local current = read(source, spec['original']['type'])
  if current == nil then
    for _, t in ipairs(spec['targets']) do
      if not holds(t['key'], t['value']) then return {status = 'missing'} end
    end
    return {status = 'already'}
  end
  if current == false or not same(current, expected(spec['original'])) then return {status = 'changed'} end
  for _, t in ipairs(spec['targets']) do
    if t['key'] ~= source and redis.call('EXISTS', t['key']) == 1 and not holds(t['key'], t['value']) and not spec['overwrite'] then
      return {status = 'conflict', key = t['key']}
    end
  end
  for _, t in ipairs(spec['targets']) do write(t['key'], t['value'], spec['expire_at']) end
  local added = {}
  for i, x in ipairs(spec['index']) do
    local existed = redis.call('EXISTS', x['key'])
    added[i] = redis.call('SADD', x['key'], x['member'])
    -- An index created for expiring targets expires with them, or it would outlive them.
    if existed == 0 and spec['expire_at'] ~= cjson.null and spec['expire_at'] ~= nil then
      redis.call('PEXPIREAT', x['key'], spec['expire_at'])
    end
  end
  local kept = spec['keep_source']
  for _, t in ipairs(spec['targets']) do if t['key'] == source then kept = true end end
  if not kept then redis.call('DEL', source) end
  return {status = 'ok', added = added}
end
"#;

const MOVE: &str = r#"
return cjson.encode(move_one(cjson.decode(ARGV[1])))
"#;

/// Many moves in one call: each compared and moved on its own, the answers in order.
const MOVE_MANY: &str = r#"
local out = {}
for i, spec in ipairs(cjson.decode(ARGV[1])) do out[i] = move_one(spec) end
return cjson.encode(out)
"#;

const RESTORE: &str = r#"
local spec = cjson.decode(ARGV[1])
if not spec['force'] then
  for _, t in ipairs(spec['targets']) do
    if redis.call('EXISTS', t['key']) == 1 and not holds(t['key'], t['value']) then
      return cjson.encode({status = 'target_changed', key = t['key']})
    end
  end
end
for _, t in ipairs(spec['targets']) do
  if t['key'] ~= spec['source'] then
    if t['previous'] ~= cjson.null and t['previous'] ~= nil then
      write(t['key'], t['previous']['value'], t['previous']['expire_at_ms'])
    else
      redis.call('DEL', t['key'])
    end
  end
end
for _, x in ipairs(spec['index']) do if x['added'] == 1 then redis.call('SREM', x['key'], x['member']) end end
write(spec['source'], spec['original'], spec['expire_at'])
return cjson.encode({status = 'ok'})
"#;

#[derive(Serialize)]
struct TargetSpec<'a> {
    key: &'a str,
    value: &'a TypedValue,
}

fn keys_of(entry: &Entry) -> Vec<String> {
    let mut keys = vec![entry.source.clone()];
    keys.extend(entry.targets.iter().map(|(k, _)| k.clone()));
    keys.extend(entry.index.iter().map(|i| i.key.clone()));
    keys.dedup();
    keys
}

/// The scripts' SHA1s once loaded (`SCRIPT LOAD`), so each key sends `EVALSHA` and its spec
/// rather than the whole script body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scripts {
    pub move_sha: String,
    pub move_many_sha: String,
    pub restore_sha: String,
}

impl Scripts {
    /// Loads both scripts; call again after a `NOSCRIPT` error (Redis restarted or flushed
    /// its script cache).
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let load = |script: &str| Command::new("SCRIPT").arg("LOAD").arg(format!("{COMMON}\n{script}"));
        let replies = store
            .pipeline(&[load(&format!("{MOVE_ONE}\n{MOVE}")), load(&format!("{MOVE_ONE}\n{MOVE_MANY}")), load(RESTORE)])
            .await?;
        let mut shas = replies.into_iter().map(|reply| match reply {
            Ok(reply) => reply
                .into_string()
                .map_err(|detail| StoreError::UnexpectedReply { command: "SCRIPT LOAD".into(), detail }),
            Err(error) => Err(StoreError::Command { command: "SCRIPT LOAD".into(), error }),
        });
        let (Some(move_sha), Some(move_many_sha), Some(restore_sha)) = (shas.next(), shas.next(), shas.next()) else {
            return Err(StoreError::UnexpectedReply { command: "SCRIPT LOAD".into(), detail: "no reply".into() });
        };
        Ok(Self { move_sha: move_sha?, move_many_sha: move_many_sha?, restore_sha: restore_sha? })
    }
}

/// True for the error Redis gives when a script is not in its cache.
pub fn is_noscript(error: &str) -> bool {
    error.starts_with("NOSCRIPT")
}

fn eval(sha: &str, keys: &[String], spec: &Value) -> Command {
    let command = keys.iter().fold(Command::new("EVALSHA").arg(sha).arg(keys.len()), |c, k| c.arg(k));
    command.arg(spec.to_string())
}

/// The move of one journaled entry.
pub fn move_command(entry: &Entry, scripts: &Scripts) -> Command {
    eval(&scripts.move_sha, &keys_of(entry), &move_spec(entry))
}

/// The moves of many journaled entries in one script call (answers with [`answers`]).
pub fn move_many_command(entries: &[Entry], scripts: &Scripts) -> Command {
    let mut keys: Vec<String> = entries.iter().flat_map(keys_of).collect();
    keys.sort();
    keys.dedup();
    let specs = Value::Array(entries.iter().map(move_spec).collect());
    eval(&scripts.move_many_sha, &keys, &specs)
}

fn move_spec(entry: &Entry) -> Value {
    json!({
        "source": entry.source,
        "original": entry.original.value,
        "expire_at": if entry.drop_expiry { None } else { entry.original.expire_at_ms },
        "targets": entry.targets.iter().map(|(key, value)| TargetSpec { key, value }).collect::<Vec<_>>(),
        "index": entry.index.iter().map(|i| json!({"key": i.key, "member": i.member})).collect::<Vec<_>>(),
        "keep_source": entry.keep_source,
        "overwrite": entry.overwrite,
    })
}

/// The restore of one journaled entry.
pub fn restore_command(entry: &Entry, force: bool, scripts: &Scripts) -> Command {
    let targets: Vec<Value> = entry
        .targets
        .iter()
        .enumerate()
        .map(|(i, (key, value))| json!({"key": key, "value": value, "previous": entry.previous_targets.get(i).cloned().flatten()}))
        .collect();
    let spec = json!({
        "source": entry.source,
        "original": entry.original.value,
        "expire_at": entry.original.expire_at_ms,
        "targets": targets,
        "index": entry.index.iter().map(|i| json!({"key": i.key, "member": i.member, "added": i.added.map(i64::from).unwrap_or(0)})).collect::<Vec<_>>(),
        "force": force,
    });
    eval(&scripts.restore_sha, &keys_of(entry), &spec)
}

/// A script's answer: `{"status": …, "added": […], "key": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptAnswer {
    pub status: String,
    pub added: Vec<bool>,
    pub key: Option<String>,
}

pub fn answer(reply: Reply) -> Result<ScriptAnswer, String> {
    let text = reply.into_string()?;
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("script answered {text:?}: {e}"))?;
    Ok(script_answer(&value))
}

/// The answers of a [`move_many_command`], in entry order.
pub fn answers(reply: Reply) -> Result<Vec<ScriptAnswer>, String> {
    let text = reply.into_string()?;
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("script answered {text:?}: {e}"))?;
    value
        .as_array()
        .map(|items| items.iter().map(script_answer).collect())
        .ok_or_else(|| format!("script answered {text:?}"))
}

fn script_answer(value: &Value) -> ScriptAnswer {
    ScriptAnswer {
        status: value["status"].as_str().unwrap_or_default().to_owned(),
        added: value["added"].as_array().map(|a| a.iter().map(|x| x.as_i64() == Some(1)).collect()).unwrap_or_default(),
        key: value["key"].as_str().map(str::to_owned),
    }
}
