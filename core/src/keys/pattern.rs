//! [`KeyPattern`]: a key template such as `user:{user}:position:{symbol}:{side}` that both
//! matches keys (capturing named segments) and renders keys from values. Segments are split
//! on `:`, so a placeholder captures exactly one segment and can never swallow a separator.
//! A placeholder may be constrained to listed values, `{side:long|short|net}`: a key whose
//! segment is another value does not match, and rendering another value is an error.
//! The legacy parsers and the migrator's rules are built on it.

use std::collections::BTreeMap;

use super::{validate_segment, KeyError};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// A named segment, and the values it may take (`None`: any valid segment).
    Placeholder(String, Option<Vec<String>>),
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
    #[error("{{{name}}} is `{value}`, not one of {allowed} (in `{pattern}`)")]
    NotAllowed { pattern: String, name: String, value: String, allowed: String },
    #[error(transparent)]
    Segment(#[from] KeyError),
}

/// Splits a pattern on the `:` that are not inside `{…}` (a constraint's own `:`).
fn pattern_segments(text: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                segments.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    segments.push(&text[start..]);
    segments
}

impl KeyPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let mut parts = Vec::new();
        for segment in pattern_segments(text) {
            if segment.is_empty() {
                return Err(PatternError::EmptySegment { pattern: text.into() });
            }
            let inner = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
            let (name, allowed) = match inner.map(|i| i.split_once(':').map_or((i, None), |(n, a)| (n, Some(a)))) {
                Some((name, allowed)) => (name, allowed),
                None => ("", None),
            };
            let well_named = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            match inner {
                Some(_) if well_named => {
                    if parts.iter().any(|p| matches!(p, Part::Placeholder(n, _) if n == name)) {
                        return Err(PatternError::Repeated { pattern: text.into(), name: name.into() });
                    }
                    let allowed = match allowed {
                        None => None,
                        Some(list) => {
                            let values: Vec<String> = list.split('|').map(str::to_owned).collect();
                            for value in &values {
                                if validate_segment("allowed value", value).is_err() || value.contains(['{', '}']) {
                                    return Err(PatternError::Malformed {
                                        pattern: text.into(),
                                        segment: segment.into(),
                                    });
                                }
                            }
                            Some(values)
                        }
                    };
                    parts.push(Part::Placeholder(name.to_owned(), allowed));
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
            Part::Placeholder(name, _) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The values `name` is constrained to, if it is.
    pub fn allowed(&self, name: &str) -> Option<&[String]> {
        self.parts.iter().find_map(|p| match p {
            Part::Placeholder(n, allowed) if n == name => allowed.as_deref(),
            _ => None,
        })
    }

    /// True when some key could match both patterns (same length, no literal disagreeing
    /// with a literal or a constraint).
    pub fn overlaps(&self, other: &KeyPattern) -> bool {
        self.parts.len() == other.parts.len()
            && self.parts.iter().zip(&other.parts).all(|pair| match pair {
                (Part::Literal(a), Part::Literal(b)) => a == b,
                (Part::Literal(text), Part::Placeholder(_, allowed))
                | (Part::Placeholder(_, allowed), Part::Literal(text)) => {
                    allowed.as_ref().is_none_or(|values| values.contains(text))
                }
                (Part::Placeholder(_, Some(a)), Part::Placeholder(_, Some(b))) => a.iter().any(|v| b.contains(v)),
                _ => true,
            })
    }

    /// True when `key` has this shape. Allocates nothing: the migrator asks it of every key a
    /// scan returns, for every rule.
    pub fn matches(&self, key: &str) -> bool {
        let mut segments = key.split(':');
        let fits = self.parts.iter().all(|part| {
            let Some(segment) = segments.next() else { return false };
            match part {
                Part::Literal(text) => text == segment,
                Part::Placeholder(_, allowed) => {
                    !segment.is_empty() && allowed.as_ref().is_none_or(|allowed| allowed.iter().any(|a| a == segment))
                }
            }
        });
        fits && segments.next().is_none()
    }

    /// Captures each placeholder's segment when `key` has this shape; `None` otherwise.
    pub fn capture(&self, key: &str) -> Option<Captures> {
        if !self.matches(key) {
            return None;
        }
        let captures = self.parts.iter().zip(key.split(':')).filter_map(|(part, segment)| match part {
            Part::Placeholder(name, _) => Some((name.clone(), segment.to_owned())),
            Part::Literal(_) => None,
        });
        Some(captures.collect())
    }

    /// Renders a key, validating every value as a key segment.
    pub fn render(&self, values: &Captures) -> Result<String, PatternError> {
        self.render_after("", values)
    }

    /// Renders a key after `prefix` (the migrator's target prefix), into one string sized
    /// once: the migrator renders a few keys for every key it moves.
    pub fn render_after(&self, prefix: &str, values: &Captures) -> Result<String, PatternError> {
        let mut key = String::with_capacity(prefix.len() + self.text.len() + 16);
        key.push_str(prefix);
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                key.push(':');
            }
            match part {
                Part::Literal(text) => key.push_str(text),
                Part::Placeholder(name, allowed) => {
                    let value = values
                        .get(name)
                        .ok_or_else(|| PatternError::Missing { pattern: self.text.clone(), name: name.clone() })?;
                    validate_segment("placeholder value", value)?;
                    if let Some(allowed) = allowed.as_ref().filter(|a| !a.contains(value)) {
                        return Err(PatternError::NotAllowed {
                            pattern: self.text.clone(),
                            name: name.clone(),
                            value: value.clone(),
                            allowed: allowed.join("|"),
                        });
                    }
                    key.push_str(value);
                }
            }
        }
        Ok(key)
    }

    /// A `SCAN MATCH` glob for keys of this shape: literals escaped, placeholders `*`.
    /// (Broader than the pattern — `*` spans `:` — so candidates are re-checked with
    /// [`KeyPattern::capture`].)
    pub fn scan_glob(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(text) => crate::glob::escape(text),
                Part::Placeholder(..) => "*".to_owned(),
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
        assert_eq!(p.render_after("v2:", &c).unwrap(), "v2:user:42:position:BTC-USDT-SWAP:long");
        let mut missing = c.clone();
        missing.remove("side");
        assert!(matches!(p.render_after("v2:", &missing), Err(PatternError::Missing { name, .. }) if name == "side"));
        assert!(p.capture("user:42:position:BTC:long:extra").is_none());
        assert!(p.capture("user::position:BTC:long").is_none());
        assert_eq!(p.scan_glob(), "user:*:position:*:*");
        let mut bad = c.clone();
        bad.insert("side".into(), "lo*ng".into());
        assert!(p.render(&bad).is_err());
    }

    #[test]
    fn constrained_placeholders_match_and_render_only_their_values() {
        let p = KeyPattern::parse("user:{user}:position:{symbol}:{side:long|short}").unwrap();
        assert_eq!(p.allowed("side"), Some(&["long".to_owned(), "short".to_owned()][..]));
        assert!(p.capture("user:1:position:BTC:long").is_some());
        assert!(p.capture("user:1:position:BTC:position_state").is_none());
        assert!(p.matches("user:1:position:BTC:long"));
        for other in [
            "user:1:position:BTC:position_state",
            "user:1:position:BTC",
            "user:1:position:BTC:long:x",
            "user::position:BTC:long",
        ] {
            assert!(!p.matches(other), "{other}");
        }
        let mut values = p.capture("user:1:position:BTC:short").unwrap();
        values.insert("side".into(), "net".into());
        assert!(matches!(p.render(&values), Err(PatternError::NotAllowed { .. })));
        assert_eq!(p.scan_glob(), "user:*:position:*:*");
        let state = KeyPattern::parse("user:{user}:position:{symbol}:{state:position_state|closing}").unwrap();
        assert!(!p.overlaps(&state));
        assert!(p.overlaps(&KeyPattern::parse("user:{u}:position:{s}:{x}").unwrap()));
        assert!(KeyPattern::parse("a:{x:}").is_err());
        assert!(KeyPattern::parse("a:{x:a*b}").is_err());
    }

    #[test]
    fn rejects_malformed_patterns() {
        assert!(KeyPattern::parse("a::b").is_err());
        assert!(KeyPattern::parse("a:{x}:{x}").is_err());
        assert!(KeyPattern::parse("a:pre{x}").is_err());
    }
}
