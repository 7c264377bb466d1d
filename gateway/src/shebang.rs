//! [`ScriptFlags`]: scripts with Upstash's shebang flags, run on a Redis that does not know
//! them. A script may open with `#!lua flags=…`; Redis 7.0 knows five flags and refuses any
//! other (`ERR Unexpected flag in script shebang: allow-key-locking`), while Upstash accepts
//! more — and newer `@upstash/ratelimit` releases send `allow-key-locking`. The gateway drops
//! the flags Redis would refuse before Redis sees the script. Clients address a loaded script
//! by the SHA-1 of the text they sent, so the gateway keeps which hash the original had and
//! which the script Redis holds has: `EVALSHA` and `SCRIPT EXISTS` of the original's hash
//! reach the rewritten script, and `SCRIPT LOAD` answers the original's hash, as Upstash does.
//! The map is bounded and per process; a hash it forgot answers `NOSCRIPT`, on which clients
//! send the script again (`EVAL`), which maps it again.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;
use sha1::{Digest, Sha1};

/// The shebang flags Redis 7.0 accepts in `EVAL` scripts.
const REDIS_FLAGS: [&str; 5] = ["no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"];

/// Rewritten scripts remembered (original hash → rewritten hash).
const REMEMBERED: usize = 4096;

pub struct ScriptFlags {
    rewritten: Mutex<LruCache<String, String>>,
}

impl Default for ScriptFlags {
    fn default() -> Self {
        Self { rewritten: Mutex::new(LruCache::new(NonZeroUsize::new(REMEMBERED).expect("a positive bound"))) }
    }
}

/// A script's SHA-1 as Redis names it: 40 lowercase hex digits.
pub fn sha1_hex(script: &[u8]) -> String {
    hex::encode(Sha1::digest(script))
}

/// `script` without the shebang flags Redis would refuse, or `None` when it has none.
pub fn without_unknown_flags(script: &[u8]) -> Option<Vec<u8>> {
    if !script.starts_with(b"#!") {
        return None;
    }
    let end = script.iter().position(|b| *b == b'\n').unwrap_or(script.len());
    let line = std::str::from_utf8(&script[2..end]).ok()?;
    let mut dropped = false;
    let tokens: Vec<String> = line
        .split(' ')
        .filter(|token| !token.is_empty())
        .filter_map(|token| match token.strip_prefix("flags=") {
            Some(flags) => {
                let kept: Vec<&str> = flags.split(',').filter(|flag| REDIS_FLAGS.contains(&flag.trim())).collect();
                dropped |= kept.len() != flags.split(',').count();
                (!kept.is_empty()).then(|| format!("flags={}", kept.join(",")))
            }
            None => Some(token.to_owned()),
        })
        .collect();
    if !dropped {
        return None;
    }
    let mut rewritten = format!("#!{}", tokens.join(" ")).into_bytes();
    rewritten.extend_from_slice(&script[end..]);
    Some(rewritten)
}

impl ScriptFlags {
    fn remembered(&self) -> std::sync::MutexGuard<'_, LruCache<String, String>> {
        self.rewritten.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Rewrites the script at `args[at]` if it carries flags Redis would refuse; returns the
    /// original's hash when it did.
    fn rewrite_script(&self, args: &mut [Vec<u8>], at: usize) -> Option<String> {
        let rewritten = without_unknown_flags(args.get(at)?)?;
        let original = sha1_hex(&args[at]);
        self.remembered().put(original.clone(), sha1_hex(&rewritten));
        args[at] = rewritten;
        Some(original)
    }

    /// Replaces the hash at `args[at]` by its rewritten script's, when it names one.
    fn map_hash(&self, args: &mut [Vec<u8>], at: usize) {
        let Some(hash) = args.get(at).map(|h| String::from_utf8_lossy(h).to_ascii_lowercase()) else { return };
        if let Some(rewritten) = self.remembered().get(&hash) {
            args[at] = rewritten.clone().into_bytes();
        }
    }

    /// Rewrites one command's arguments in place for Redis. Returns what the client must be
    /// answered instead of Redis's reply: the original's hash, for a rewritten `SCRIPT LOAD`.
    pub fn rewrite(&self, args: &mut [Vec<u8>]) -> Option<String> {
        let name = String::from_utf8_lossy(args.first()?).to_ascii_uppercase();
        match name.as_str() {
            "EVAL" | "EVAL_RO" => {
                self.rewrite_script(args, 1);
                None
            }
            "EVALSHA" | "EVALSHA_RO" => {
                self.map_hash(args, 1);
                None
            }
            "SCRIPT" => match String::from_utf8_lossy(args.get(1)?).to_ascii_uppercase().as_str() {
                "LOAD" if args.len() == 3 => self.rewrite_script(args, 2),
                "EXISTS" => {
                    (2..args.len()).for_each(|at| self.map_hash(args, at));
                    None
                }
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(parts: &[&str]) -> Vec<Vec<u8>> {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn only_flags_redis_refuses_are_dropped() {
        let strip = |s: &str| without_unknown_flags(s.as_bytes()).map(|b| String::from_utf8(b).unwrap());
        assert_eq!(strip("#!lua flags=allow-key-locking\nreturn 1").as_deref(), Some("#!lua\nreturn 1"));
        assert_eq!(
            strip("#!lua flags=no-writes,allow-key-locking\nreturn 1").as_deref(),
            Some("#!lua flags=no-writes\nreturn 1")
        );
        assert_eq!(strip("#!lua flags=no-writes\nreturn 1"), None, "nothing to drop");
        assert_eq!(strip("return 1"), None, "no shebang");
        assert_eq!(strip("#!lua\nreturn 1"), None);
    }

    #[test]
    fn hashes_of_rewritten_scripts_reach_the_rewritten_script() {
        let flags = ScriptFlags::default();
        let original = "#!lua flags=allow-key-locking\nreturn 1";
        let mut load = args(&["script", "load", original]);
        assert_eq!(flags.rewrite(&mut load), Some(sha1_hex(original.as_bytes())), "answered with the original's hash");
        assert_eq!(load[2], b"#!lua\nreturn 1");
        let rewritten = sha1_hex(b"#!lua\nreturn 1");
        let mut evalsha = args(&["EVALSHA", &sha1_hex(original.as_bytes()).to_uppercase(), "0"]);
        assert_eq!(flags.rewrite(&mut evalsha), None);
        assert_eq!(evalsha[1], rewritten.as_bytes());
        let mut exists = args(&["SCRIPT", "EXISTS", &sha1_hex(original.as_bytes()), "ffff"]);
        flags.rewrite(&mut exists);
        assert_eq!((exists[2].as_slice(), exists[3].as_slice()), (rewritten.as_bytes(), b"ffff".as_slice()));
        let mut unknown = args(&["EVALSHA", "abc", "0"]);
        flags.rewrite(&mut unknown);
        assert_eq!(unknown[1], b"abc", "hashes it never rewrote pass unchanged");
        assert_eq!(sha1_hex(b"return 1"), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "Redis's SHA-1 of `return 1`");
    }
}
