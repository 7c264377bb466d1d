//! A sorted set with Redis ordering: by score, ties broken by member bytes. Scores are
//! doubles as in Redis; edgesync only stores integer millisecond timestamps in them, which
//! doubles hold exactly up to 2^53.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

/// A score with the total order Redis uses (no NaN ever enters: inputs are validated).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Formats a score as Redis 7.0 replies it: integers without a fraction.
pub fn format_score(score: f64) -> String {
    if score.is_infinite() {
        return if score > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if score.fract() == 0.0 && score.abs() < 1e17 {
        format!("{}", score as i64)
    } else {
        format!("{score}")
    }
}

#[derive(Debug, Default, Clone)]
pub struct SortedSet {
    scores: HashMap<String, Score>,
    order: BTreeSet<(Score, String)>,
}

impl SortedSet {
    /// Adds or updates; true when the member is new.
    pub fn insert(&mut self, member: String, score: f64) -> bool {
        let score = Score(score);
        match self.scores.insert(member.clone(), score) {
            Some(old) => {
                self.order.remove(&(old, member.clone()));
                self.order.insert((score, member));
                false
            }
            None => {
                self.order.insert((score, member));
                true
            }
        }
    }

    pub fn remove(&mut self, member: &str) -> bool {
        match self.scores.remove(member) {
            Some(score) => self.order.remove(&(score, member.to_owned())),
            None => false,
        }
    }

    pub fn score(&self, member: &str) -> Option<f64> {
        self.scores.get(member).map(|s| s.0)
    }

    pub fn contains(&self, member: &str) -> bool {
        self.scores.contains_key(member)
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// Members in ascending order with their scores.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, f64)> {
        self.order.iter().map(|(score, member)| (member.as_str(), score.0))
    }
}
