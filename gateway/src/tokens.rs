//! The tokens clients present, and which are accepted: each is a secret that must be
//! non-empty. A token given empty on the command line is a mistake the gateway refuses to
//! start with; an empty environment variable (a template's `GATEWAY_READ_ONLY_TOKEN=`) means
//! that token is unset. Comparisons run in constant time and never match an empty token, so
//! "no `Authorization`" can never equal a token.

use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Every command but the denied ones.
    Full,
    /// Every command, the denied ones included (still no connection-state commands).
    Admin,
    /// Read commands only.
    ReadOnly,
}

/// The tokens the gateway accepts; at least one is set, none is empty.
#[derive(Clone, Default)]
pub struct Tokens {
    /// Every command the policy allows.
    pub full: Option<String>,
    /// Read commands only.
    pub read_only: Option<String>,
    /// Every command, the denied ones included.
    pub admin: Option<String>,
}

/// Where a token's value came from: an empty one means different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    CommandLine,
    Environment,
}

/// Why the given tokens cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("{0} is empty: a token must have at least one character (leave the flag out to not use that token)")]
    Empty(&'static str),
    #[error("no token given: set --token, --read-only-token or --admin-token (empty values count as unset)")]
    NoToken,
}

/// A token's value once the empty-value rule is applied: `Ok(None)` when unset.
pub fn accept(
    flag: &'static str,
    variable: &'static str,
    value: Option<String>,
    source: Option<Source>,
) -> Result<Option<String>, TokenError> {
    match value {
        Some(value) if value.trim().is_empty() => match source {
            Some(Source::Environment) => {
                eprintln!("edgesync-gateway: {variable} is empty; that token is unset");
                Ok(None)
            }
            _ => Err(TokenError::Empty(flag)),
        },
        other => Ok(other),
    }
}

impl Tokens {
    /// Refuses a set of tokens with none in it, or with an empty one.
    pub fn check(&self) -> Result<(), TokenError> {
        let all = [(&self.full, "--token"), (&self.read_only, "--read-only-token"), (&self.admin, "--admin-token")];
        if let Some((_, flag)) = all.iter().find(|(token, _)| token.as_deref().is_some_and(|t| t.trim().is_empty())) {
            return Err(TokenError::Empty(flag));
        }
        if all.iter().all(|(token, _)| token.is_none()) {
            return Err(TokenError::NoToken);
        }
        Ok(())
    }

    /// The access `presented` grants, if any. Every comparison runs, so which token matched
    /// does not show in the timing.
    pub fn access(&self, presented: &str) -> Option<Access> {
        let admin = same_token(presented, self.admin.as_deref());
        let full = same_token(presented, self.full.as_deref());
        let read_only = same_token(presented, self.read_only.as_deref());
        match (admin, full, read_only) {
            (true, _, _) => Some(Access::Admin),
            (_, true, _) => Some(Access::Full),
            (_, _, true) => Some(Access::ReadOnly),
            _ => None,
        }
    }
}

/// True when `presented` equals a non-empty `expected`, in time independent of where they
/// differ.
fn same_token(presented: &str, expected: Option<&str>) -> bool {
    expected.is_some_and(|expected| !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole_and_never_empty() {
        let tokens = Tokens { full: Some("secret-token".into()), read_only: Some(String::new()), admin: None };
        assert_eq!(tokens.access("secret-token"), Some(Access::Full));
        assert_eq!(tokens.access("secret-toke"), None);
        assert_eq!(tokens.access(""), None, "an empty token never matches a missing Authorization");
        assert_eq!(tokens.check(), Err(TokenError::Empty("--read-only-token")));
    }

    #[test]
    fn empty_values_refuse_on_the_command_line_and_unset_from_the_environment() {
        assert_eq!(
            accept("--token", "GATEWAY_TOKEN", Some(String::new()), Some(Source::CommandLine)),
            Err(TokenError::Empty("--token"))
        );
        assert_eq!(
            accept("--read-only-token", "GATEWAY_READ_ONLY_TOKEN", Some(" ".into()), Some(Source::Environment)),
            Ok(None)
        );
        assert_eq!(
            accept("--token", "GATEWAY_TOKEN", Some("t".into()), Some(Source::Environment)),
            Ok(Some("t".into()))
        );
        assert_eq!(Tokens::default().check(), Err(TokenError::NoToken));
    }
}
