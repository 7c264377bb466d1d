//! Which Redis a journal's targets were written to, kept beside the journal (a file `target`
//! in its directory, the URL without its password) so that `verify` and `rollback` look for
//! the targets where `apply` put them: run without `--target-url` on a journal that moved keys
//! to another Redis, rollback would otherwise look for the targets — and delete keys of their
//! names — on the source.

use std::path::Path;

use crate::connect::redacted;

const FILE: &str = "target";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetMismatch {
    #[error("this journal moved keys to {journaled}; give the same --target-url (got {given})")]
    Different { journaled: String, given: String },
    #[error("cannot read or write the journal's target file: {0}")]
    Io(String),
}

fn describe(url: Option<&str>) -> String {
    url.map_or_else(|| "the source Redis itself".to_owned(), redacted)
}

/// Checks `target` (the step's `--target-url`) against what the journal recorded; with
/// `record`, an `apply`, a journal that recorded nothing yet records it.
pub fn check(journal: &Path, target: Option<&str>, record: bool) -> Result<(), TargetMismatch> {
    let path = journal.join(FILE);
    let given = describe(target);
    match std::fs::read_to_string(&path) {
        Ok(journaled) if journaled == given => Ok(()),
        Ok(journaled) => Err(TargetMismatch::Different { journaled, given }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if record {
                std::fs::write(&path, &given).map_err(|e| TargetMismatch::Io(e.to_string()))?;
                Ok(())
            } else if target.is_some() {
                Err(TargetMismatch::Different { journaled: describe(None), given })
            } else {
                Ok(())
            }
        }
        Err(error) => Err(TargetMismatch::Io(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_is_read_with_the_target_it_was_written_with() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check(dir.path(), Some("redis://:pw@10.0.0.2:6379"), true), Ok(()));
        assert_eq!(check(dir.path(), Some("redis://:pw@10.0.0.2:6379"), false), Ok(()));
        let error = check(dir.path(), None, false).unwrap_err();
        assert!(error.to_string().contains("redis://***@10.0.0.2:6379"), "{error}");
        assert!(!error.to_string().contains("pw"));
        let other = tempfile::tempdir().unwrap();
        assert_eq!(check(other.path(), None, true), Ok(()));
        assert!(check(other.path(), Some("https://eu1.upstash.io"), false).is_err());
    }
}
