//! Which Redis a journal belongs to, kept beside the journal as two small text files: `source`
//! (the database its originals were read from) and `target` (where its targets were written,
//! when that is another Redis). `apply` records them; `verify` and `rollback` are refused when
//! pointed elsewhere, because a journal read against the wrong database does harm quietly:
//! verify reports another database's keys as missing, and rollback would restore one
//! database's originals into another and delete keys of the targets' names there.
//!
//! A database is described without credentials: `redis://host:port/db` for one Redis (default
//! port and database written out, so equivalent URLs compare equal), the masters' addresses
//! for a Redis Cluster (any node's URL reaches it, and a failover keeps most of them, so a
//! cluster matches when it still has one of the journaled masters), and the URL itself for
//! Upstash REST.

use std::path::Path;

use crate::connect::redacted;

const SOURCE_FILE: &str = "source";
const TARGET_FILE: &str = "target";
const CLUSTER: &str = "redis cluster, masters ";

/// A database as a journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// One Redis or an Upstash REST endpoint, by its normalized URL without credentials.
    Single(String),
    /// A Redis Cluster, by its masters' `host:port`, sorted.
    Cluster(Vec<String>),
}

impl Database {
    /// One Redis (or REST endpoint) named by `url`.
    pub fn single(url: &str) -> Self {
        Database::Single(normalized(url))
    }

    /// A cluster whose masters are at `masters`.
    pub fn cluster(mut masters: Vec<String>) -> Self {
        masters.sort();
        Database::Cluster(masters)
    }

    fn describe(&self) -> String {
        match self {
            Database::Single(url) => url.clone(),
            Database::Cluster(masters) => format!("{CLUSTER}{}", masters.join(",")),
        }
    }

    fn parse(text: &str) -> Self {
        match text.strip_prefix(CLUSTER) {
            Some(masters) => Database::Cluster(masters.split(',').map(str::to_owned).collect()),
            None => Database::Single(text.to_owned()),
        }
    }

    /// Whether `self`, read from the journal, is the database `given` describes now.
    fn is(&self, given: &Database) -> bool {
        match (self, given) {
            (Database::Single(journaled), Database::Single(given)) => journaled == given,
            (Database::Cluster(journaled), Database::Cluster(given)) => journaled.iter().any(|m| given.contains(m)),
            _ => false,
        }
    }
}

/// `url` with its scheme and host lowercased, port and database written out, and no user or
/// password; a URL that does not parse is kept as given, redacted.
fn normalized(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else { return redacted(url) };
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    match parsed.scheme() {
        scheme @ ("redis" | "rediss") => {
            let database = parsed.path().trim_start_matches('/');
            let database = if database.is_empty() { "0" } else { database };
            format!("{scheme}://{host}:{}/{database}", parsed.port().unwrap_or(6379))
        }
        scheme => {
            let port = parsed.port_or_known_default().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{scheme}://{host}{port}{}", parsed.path().trim_end_matches('/'))
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OwnerMismatch {
    #[error(
        "this journal belongs to {journaled}, not {given}: give the --url apply was run with, or the --journal of \
         this database (if the database itself moved here, write its new URL into {file})"
    )]
    Source { journaled: String, given: String, file: String },
    #[error("this journal moved keys to {journaled}; give the same --target-url (got {given})")]
    Target { journaled: String, given: String },
    #[error("cannot read or write the journal's {file} file: {reason}")]
    Io { file: String, reason: String },
}

/// Checks that the journal in `journal` belongs to `source` and wrote its targets to
/// `target` (the step's `--target-url`, `None` for the source itself). With `record` (an
/// `apply`), a journal that recorded nothing yet records both.
pub fn check(journal: &Path, source: &Database, target: Option<&str>, record: bool) -> Result<(), OwnerMismatch> {
    check_source(journal, source, record)?;
    check_target(journal, target, record)
}

fn read(path: &Path) -> Result<Option<String>, OwnerMismatch> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io(path, error)),
    }
}

fn io(path: &Path, error: std::io::Error) -> OwnerMismatch {
    OwnerMismatch::Io { file: path.display().to_string(), reason: error.to_string() }
}

fn check_source(journal: &Path, source: &Database, record: bool) -> Result<(), OwnerMismatch> {
    let path = journal.join(SOURCE_FILE);
    match read(&path)? {
        Some(journaled) if Database::parse(journaled.trim()).is(source) => Ok(()),
        Some(journaled) => Err(OwnerMismatch::Source {
            journaled: journaled.trim().to_owned(),
            given: source.describe(),
            file: path.display().to_string(),
        }),
        // A journal written before sources were recorded: nothing to compare with.
        None if !record => Ok(()),
        None => std::fs::write(&path, source.describe()).map_err(|e| io(&path, e)),
    }
}

fn describe_target(url: Option<&str>) -> String {
    url.map_or_else(|| "the source Redis itself".to_owned(), redacted)
}

fn check_target(journal: &Path, target: Option<&str>, record: bool) -> Result<(), OwnerMismatch> {
    let path = journal.join(TARGET_FILE);
    let given = describe_target(target);
    match read(&path)? {
        Some(journaled) if journaled == given => Ok(()),
        Some(journaled) => Err(OwnerMismatch::Target { journaled, given }),
        None if record => std::fs::write(&path, &given).map_err(|e| io(&path, e)),
        None if target.is_some() => Err(OwnerMismatch::Target { journaled: describe_target(None), given }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(url: &str) -> Database {
        Database::single(url)
    }

    #[test]
    fn a_journal_is_read_with_the_target_it_was_written_with() {
        let dir = tempfile::tempdir().unwrap();
        let source = single("redis://127.0.0.1:6379");
        assert_eq!(check(dir.path(), &source, Some("redis://:pw@10.0.0.2:6379"), true), Ok(()));
        assert_eq!(check(dir.path(), &source, Some("redis://:pw@10.0.0.2:6379"), false), Ok(()));
        let error = check(dir.path(), &source, None, false).unwrap_err();
        assert!(error.to_string().contains("redis://***@10.0.0.2:6379"), "{error}");
        assert!(!error.to_string().contains("pw"));
        let other = tempfile::tempdir().unwrap();
        assert_eq!(check(other.path(), &source, None, true), Ok(()));
        assert!(check(other.path(), &source, Some("https://eu1.upstash.io"), false).is_err());
    }

    #[test]
    fn a_journal_is_refused_for_another_database_and_equivalent_urls_match() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check(dir.path(), &single("redis://:secret@LocalHost/2"), None, true), Ok(()));
        let recorded = std::fs::read_to_string(dir.path().join(SOURCE_FILE)).unwrap();
        assert_eq!(recorded, "redis://localhost:6379/2");
        assert_eq!(check(dir.path(), &single("redis://user:other@localhost:6379/2"), None, false), Ok(()));
        for other in ["redis://localhost:6379/3", "redis://localhost:6380/2", "rediss://localhost:6379/2"] {
            let error = check(dir.path(), &single(other), None, false).unwrap_err();
            assert!(matches!(error, OwnerMismatch::Source { .. }), "{other}: {error}");
            assert!(error.to_string().contains("redis://localhost:6379/2"), "{error}");
        }
        // apply on the wrong database is refused as well, and records nothing new.
        assert!(check(dir.path(), &single("redis://localhost:6379/3"), None, true).is_err());
        assert_eq!(std::fs::read_to_string(dir.path().join(SOURCE_FILE)).unwrap(), recorded);
    }

    #[test]
    fn a_cluster_matches_while_one_journaled_master_remains() {
        let dir = tempfile::tempdir().unwrap();
        let masters = |list: &[&str]| Database::cluster(list.iter().map(|m| m.to_string()).collect());
        let cluster = masters(&["127.0.0.1:7002", "127.0.0.1:7001", "127.0.0.1:7003"]);
        assert_eq!(check(dir.path(), &cluster, None, true), Ok(()));
        let failed_over = masters(&["127.0.0.1:7001", "127.0.0.1:7005", "127.0.0.1:7006"]);
        assert_eq!(check(dir.path(), &failed_over, None, false), Ok(()));
        let another = masters(&["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"]);
        assert!(check(dir.path(), &another, None, false).is_err());
        assert!(check(dir.path(), &single("redis://127.0.0.1:7001"), None, false).is_err());
    }

    #[test]
    fn urls_are_normalized_without_credentials() {
        assert_eq!(normalized("redis://:pw@Host"), "redis://host:6379/0");
        assert_eq!(normalized("rediss://u:pw@h:6380/4"), "rediss://h:6380/4");
        assert_eq!(normalized("https://eu1-x.upstash.io/"), "https://eu1-x.upstash.io:443");
        assert_eq!(normalized("http://127.0.0.1:8079"), "http://127.0.0.1:8079");
    }
}
