//! Redis glob matching (`SCAN … MATCH`, `KEYS` semantics): `*` any run, `?` one byte,
//! `[abc]`, `[^a]`, `[a-z]` classes and `\` escapes, over bytes like Redis's
//! `stringmatchlen`, in time linear in the key ([`Glob`]). The memory store uses it so
//! `SCAN MATCH` answers as Redis does; key patterns and invalidation use [`escape`] to put
//! literal text into a pattern.

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Element {
    Star,
    Literal(u8),
    Any,
    /// A class: the bytes it accepts.
    Class(Box<[bool; 256]>),
}

/// A compiled Redis glob. Matching simulates the pattern's automaton over the text: the set
/// of pattern positions reached so far is a bit set, advanced once per text byte by a table
/// lookup, a shift and a mask — linear in the text whatever the pattern. The backtracking
/// matcher Redis itself had (CVE-2022-36021) takes exponential time on `*a*a*a*…*b`.
#[derive(Debug, Clone)]
pub struct Glob {
    /// 64-bit words per position set.
    words: usize,
    /// Positions `i` whose element accepts byte `b`, for each `b`: `accepts[b * words + w]`.
    accepts: Vec<u64>,
    /// Positions holding a `*`.
    stars: Vec<u64>,
    /// The position reached when the whole pattern is matched.
    end: usize,
}

fn parse(mut pattern: &[u8]) -> Vec<Element> {
    let mut elements = Vec::new();
    while let Some(&p) = pattern.first() {
        match p {
            b'*' => {
                if elements.last() != Some(&Element::Star) {
                    elements.push(Element::Star);
                }
                pattern = &pattern[1..];
            }
            b'?' => {
                elements.push(Element::Any);
                pattern = &pattern[1..];
            }
            b'[' => {
                let mut set = Box::new([false; 256]);
                let mut rest = &pattern[1..];
                for (c, slot) in set.iter_mut().enumerate() {
                    let (matched, after) = match_class(&pattern[1..], c as u8);
                    *slot = matched;
                    rest = after;
                }
                elements.push(Element::Class(set));
                pattern = rest;
            }
            _ => {
                let literal = if p == b'\\' && pattern.len() >= 2 {
                    pattern = &pattern[1..];
                    pattern[0]
                } else {
                    p
                };
                elements.push(Element::Literal(literal));
                pattern = &pattern[1..];
            }
        }
    }
    elements
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        let elements = parse(pattern.as_bytes());
        let end = elements.len();
        let words = end / 64 + 1;
        let mut accepts = vec![0u64; 256 * words];
        let mut stars = vec![0u64; words];
        for (i, element) in elements.iter().enumerate() {
            let bit = 1u64 << (i % 64);
            match element {
                Element::Star => stars[i / 64] |= bit,
                Element::Literal(b) => accepts[*b as usize * words + i / 64] |= bit,
                Element::Any => (0..256).for_each(|b| accepts[b * words + i / 64] |= bit),
                Element::Class(set) => {
                    for (b, _) in set.iter().enumerate().filter(|(_, accepted)| **accepted) {
                        accepts[b * words + i / 64] |= bit;
                    }
                }
            }
        }
        Self { words, accepts, stars, end }
    }

    /// Adds the positions a `*` reaches by matching nothing (consecutive stars are merged,
    /// so one step suffices).
    fn close(&self, state: &mut [u64]) {
        let mut carry = 0;
        for (word, star) in state.iter_mut().zip(&self.stars) {
            let skipped = *word & star;
            let next_carry = skipped >> 63;
            *word |= (skipped << 1) | carry;
            carry = next_carry;
        }
    }

    pub fn matches(&self, text: &[u8]) -> bool {
        if self.words == 1 {
            return self.matches_short(text);
        }
        let mut state = vec![0u64; self.words];
        state[0] = 1;
        self.close(&mut state);
        for &byte in text {
            let accepts = &self.accepts[byte as usize * self.words..][..self.words];
            let mut carry = 0;
            let mut any = 0;
            for ((word, accept), star) in state.iter_mut().zip(accepts).zip(&self.stars) {
                let advanced = *word & accept;
                let next_carry = advanced >> 63;
                *word = (advanced << 1) | carry | (*word & star);
                carry = next_carry;
                any |= *word;
            }
            if any == 0 {
                return false;
            }
            self.close(&mut state);
        }
        state[self.end / 64] & (1u64 << (self.end % 64)) != 0
    }

    /// [`Glob::matches`] for a pattern of fewer than 64 elements (every real key pattern): the
    /// position set is one word, kept in a register rather than a vector allocated per call.
    fn matches_short(&self, text: &[u8]) -> bool {
        let star = self.stars[0];
        let close = |state: u64| state | ((state & star) << 1);
        let mut state = close(1);
        for &byte in text {
            state = ((state & self.accepts[byte as usize]) << 1) | (state & star);
            if state == 0 {
                return false;
            }
            state = close(state);
        }
        state & (1u64 << self.end) != 0
    }
}

/// True when `text` matches the Redis glob `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    Glob::new(pattern).matches(text.as_bytes())
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
        assert!(!matches("[", "") && matches("[abc", "b"), "an unterminated class runs to the end");
        assert!(matches("a\\", "a\\"), "a trailing backslash is literal");
        assert!(matches("**", "anything") && !matches("a*", "b"));
    }

    #[test]
    fn long_patterns_and_hostile_stars_stay_correct() {
        let key = "a".repeat(256);
        assert!(!matches("*a*a*a*a*a*a*a*a*a*a*b", &key));
        assert!(matches("*a*a*a*a*a*a*a*a*a*a*", &key));
        let long: String = "ab".repeat(100);
        assert!(matches(&long, &long) && matches(&format!("{}*", &long[..150]), &long));
        assert!(!matches(&format!("{long}?"), &long));
        assert!(matches(&format!("*{}", &long[120..]), &long));
    }

    #[test]
    fn one_word_patterns_answer_as_the_general_matcher() {
        /// A pattern's position set spread over two words: the general path.
        fn general(pattern: &str) -> Glob {
            let mut glob = Glob::new(pattern);
            glob.words = 2;
            glob.accepts = glob.accepts.iter().flat_map(|word| [*word, 0]).collect();
            glob.stars.push(0);
            glob
        }
        let patterns = ["*", "a*", "*:positions:*", "user:*:position:*", "h[^e]l?o*", "*a*b*c*", "x", ""];
        let texts = ["", "a", "abc", "okx:positions:7", "user:7:position:BTC:long", "hallo!", "xaxbxc", "x"];
        for pattern in patterns {
            for text in texts {
                let (short, long) = (Glob::new(pattern), general(pattern));
                assert_eq!(short.matches(text.as_bytes()), long.matches(text.as_bytes()), "{pattern} ~ {text}");
            }
        }
    }

    #[test]
    fn escaped_text_matches_only_itself() {
        let literal = "we*ird?[key]\\";
        assert!(matches(&escape(literal), literal));
        assert!(!matches(&escape(literal), "weXirdY[key]\\"));
    }
}
