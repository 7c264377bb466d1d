//! [`KeyPattern`]: a key template such as `user:{user}:position:{symbol}:{side}` that both
//! matches keys (capturing named segments) and renders keys from values. Segments are split
//! on `:`, so a placeholder captures exactly one segment and can never swallow a separator.
//! The legacy parsers and the migrator's rules are built on it.

use std::collections::BTreeMap;

use super::{validate_segment, KeyError};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    text: String,
    parts: Vec<Part>,
}

/// Named segment values captured from, or rendered into, a key.
pub type Captures = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("pattern `{pattern}` has an empty segment")]
    EmptySegment { pattern: String },
    #[error("pattern `{pattern}` uses {{{name}}} twice")]
    Repeated { pattern: String, name: String },
    #[error("pattern `{pattern}` has a malformed segment `{segment}` (placeholders fill a whole segment)")]
    Malformed { pattern: String, segment: String },
    #[error("no value for {{{name}}} in `{pattern}`")]
    Missing { pattern: String, name: String },
    #[error(transparent)]
    Segment(#[from] KeyError),
}

impl KeyPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let mut parts = Vec::new();
        for segment in text.split(':') {
            if segment.is_empty() {
                return Err(PatternError::EmptySegment { pattern: text.into() });
            }
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                    if parts.contains(&Part::Placeholder(name.to_owned())) {
                        return Err(PatternError::Repeated { pattern: text.into(), name: name.into() });
                    }
                    parts.push(Part::Placeholder(name.to_owned()));
                }
                _ if segment.contains(['{', '}']) => {
                    return Err(PatternError::Malformed { pattern: text.into(), segment: segment.into() });
                }
                _ => parts.push(Part::Literal(segment.to_owned())),
            }
        }
        Ok(Self { text: text.to_owned(), parts })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Placeholder names in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Captures each placeholder's segment when `key` has this shape; `None` otherwise.
    pub fn capture(&self, key: &str) -> Option<Captures> {
        let segments: Vec<&str> = key.split(':').collect();
        if segments.len() != self.parts.len() {
            return None;
        }
        let mut captures = Captures::new();
        for (part, segment) in self.parts.iter().zip(segments) {
            match part {
                Part::Literal(text) if text == segment => {}
                Part::Literal(_) => return None,
                Part::Placeholder(_) if segment.is_empty() => return None,
                Part::Placeholder(name) => {
                    captures.insert(name.clone(), segment.to_owned());
                }
            }
        }
        Some(captures)
    }

    /// Renders a key, validating every value as a key segment.
    pub fn render(&self, values: &Captures) -> Result<String, PatternError> {
        let mut segments = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => segments.push(text.clone()),
                Part::Placeholder(name) => {
                    let value = values
                        .get(name)
                        .ok_or_else(|| PatternError::Missing { pattern: self.text.clone(), name: name.clone() })?;
                    validate_segment("placeholder value", value)?;
                    segments.push(value.clone());
                }
            }
        }
        Ok(segments.join(":"))
    }

    /// A `SCAN MATCH` glob for keys of this shape: literals escaped, placeholders `*`.
    /// (Broader than the pattern — `*` spans `:` — so candidates are re-checked with
    /// [`KeyPattern::capture`].)
    pub fn scan_glob(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(text) => crate::store::glob::escape(text),
                Part::Placeholder(_) => "*".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(":")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_renders_and_globs() {
        let p = KeyPattern::parse("user:{user}:position:{symbol}:{side}").unwrap();
        let c = p.capture("user:42:position:BTC-USDT-SWAP:long").unwrap();
        assert_eq!(c["user"], "42");
        assert_eq!(c["symbol"], "BTC-USDT-SWAP");
        assert_eq!(p.render(&c).unwrap(), "user:42:position:BTC-USDT-SWAP:long");
        assert!(p.capture("user:42:position:BTC:long:extra").is_none());
        assert!(p.capture("user::position:BTC:long").is_none());
        assert_eq!(p.scan_glob(), "user:*:position:*:*");
        let mut bad = c.clone();
        bad.insert("side".into(), "lo*ng".into());
        assert!(p.render(&bad).is_err());
    }

    #[test]
    fn rejects_malformed_patterns() {
        assert!(KeyPattern::parse("a::b").is_err());
        assert!(KeyPattern::parse("a:{x}:{x}").is_err());
        assert!(KeyPattern::parse("a:pre{x}").is_err());
    }
}
