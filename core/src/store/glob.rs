//! Redis glob matching (`SCAN … MATCH`, `KEYS` semantics): `*` any run, `?` one byte,
//! `[abc]`, `[^a]`, `[a-z]` classes and `\` escapes, over bytes like Redis's
//! `stringmatchlen`. The memory store uses it so `SCAN MATCH` answers as Redis does; the
//! invalidation code uses [`escape`] to put literal text into a pattern.

/// True when `text` matches the Redis glob `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    match_bytes(pattern.as_bytes(), text.as_bytes())
}

fn match_bytes(mut pattern: &[u8], mut text: &[u8]) -> bool {
    while let Some(&p) = pattern.first() {
        match p {
            b'*' => {
                while pattern.len() > 1 && pattern[1] == b'*' {
                    pattern = &pattern[1..];
                }
                if pattern.len() == 1 {
                    return true;
                }
                return (0..=text.len()).any(|skip| match_bytes(&pattern[1..], &text[skip..]));
            }
            b'?' => {
                if text.is_empty() {
                    return false;
                }
                text = &text[1..];
                pattern = &pattern[1..];
            }
            b'[' => {
                let Some(&c) = text.first() else { return false };
                let (matched, rest) = match_class(&pattern[1..], c);
                if !matched {
                    return false;
                }
                pattern = rest;
                text = &text[1..];
            }
            _ => {
                let literal = if p == b'\\' && pattern.len() >= 2 {
                    pattern = &pattern[1..];
                    pattern[0]
                } else {
                    p
                };
                if text.first() != Some(&literal) {
                    return false;
                }
                text = &text[1..];
                pattern = &pattern[1..];
            }
        }
    }
    text.is_empty()
}

/// Matches `c` against a class body (after `[`); returns whether it matched and the pattern
/// after the closing `]` (an unterminated class runs to the end, as in Redis).
fn match_class(mut body: &[u8], c: u8) -> (bool, &[u8]) {
    let negate = body.first() == Some(&b'^');
    if negate {
        body = &body[1..];
    }
    let mut matched = false;
    loop {
        match body {
            [] => break,
            [b']', rest @ ..] => {
                body = rest;
                break;
            }
            [b'\\', escaped, rest @ ..] => {
                matched |= *escaped == c;
                body = rest;
            }
            [start, b'-', end, rest @ ..] if *end != b']' => {
                let (low, high) = if start <= end { (*start, *end) } else { (*end, *start) };
                matched |= (low..=high).contains(&c);
                body = rest;
            }
            [single, rest @ ..] => {
                matched |= *single == c;
                body = rest;
            }
        }
    }
    (matched != negate, body)
}

/// Escapes glob metacharacters so `text` matches only itself inside a pattern.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_glob_semantics() {
        assert!(matches("*", ""));
        assert!(matches("qrl:v1:*", "qrl:v1:price:mexc:QRLUSDT:latest"));
        assert!(!matches("qrl:v1:*", "qrl:v2:price"));
        assert!(matches("h?llo", "hello") && !matches("h?llo", "hllo"));
        assert!(matches("h[ae]llo", "hallo") && !matches("h[ae]llo", "hillo"));
        assert!(matches("h[^e]llo", "hallo") && !matches("h[^e]llo", "hello"));
        assert!(matches("h[a-b]llo", "hbllo") && !matches("h[a-b]llo", "hcllo"));
        assert!(matches("*:QRLUSDT:*", "qrl:v1:price:mexc:QRLUSDT:latest"));
        assert!(matches("a\\*b", "a*b") && !matches("a\\*b", "axb"));
        assert!(matches("*a*b*c*", "xxaxxbxxcxx"));
    }

    #[test]
    fn escaped_text_matches_only_itself() {
        let literal = "we*ird?[key]\\";
        assert!(matches(&escape(literal), literal));
        assert!(!matches(&escape(literal), "weXirdY[key]\\"));
    }
}
