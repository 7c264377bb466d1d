//! [`MemberWrite`]: the sorted-set writes the copy applies member by member instead of loading
//! the whole set. The cron appends to histories — `ZADD key score member` then
//! `ZREMRANGEBYRANK key 0 -(n+1)` — and a history of raw responses holds up to a thousand
//! pages of tens of KB each: loading, re-running and re-saving it whole for every append made
//! the Durable Object's work grow with the history, not with the append. These two forms are
//! what the copy recognises; anything else on a sorted set runs on the interpreter as before.

use crate::store::Command;

/// A sorted-set write that touches only the members it names (and the lowest-ranked ones).
#[derive(Debug, Clone, PartialEq)]
pub enum MemberWrite<'a> {
    /// `ZADD key score member [score member …]` (no flags): adds or rescores; answers how many
    /// members are new.
    Add(Vec<(f64, &'a str)>),
    /// `ZREMRANGEBYRANK key 0 -(keep+1)`: removes all but the `keep` highest-ranked members;
    /// answers how many were removed. An emptied set is deleted, as in Redis.
    KeepNewest(usize),
}

impl<'a> MemberWrite<'a> {
    /// The key and the write, when `command` has one of the two forms with valid arguments
    /// (anything Redis would refuse is left to the interpreter, which refuses it the same way).
    pub fn of(command: &'a Command) -> Option<(&'a str, Self)> {
        let key = command.text(0)?;
        let arguments = command.parts().len() - 2;
        match command.name() {
            "ZADD" if arguments >= 2 && arguments.is_multiple_of(2) => {
                let pairs = (0..arguments / 2)
                    .map(|i| {
                        let score: f64 = command.text(1 + 2 * i)?.parse().ok()?;
                        let member = command.text(2 + 2 * i)?;
                        (!score.is_nan()).then_some((score, member))
                    })
                    // A flag (NX, XX, GT, LT, CH, INCR) does not parse as a score.
                    .collect::<Option<Vec<_>>>()?;
                Some((key, Self::Add(pairs)))
            }
            "ZREMRANGEBYRANK" if arguments == 2 => {
                let start: i64 = command.text(1)?.parse().ok()?;
                let stop: i64 = command.text(2)?.parse().ok()?;
                (start == 0 && stop < 0).then(|| (key, Self::KeepNewest((-stop - 1) as usize)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_append_forms_are_recognised_and_nothing_else() {
        let add = Command::zadd("h", 7, "m");
        assert_eq!(MemberWrite::of(&add), Some(("h", MemberWrite::Add(vec![(7.0, "m")]))));
        let trim = Command::ztrim_to_newest("h", 1000);
        assert_eq!(MemberWrite::of(&trim), Some(("h", MemberWrite::KeepNewest(1000))));
        let two = Command::new("ZADD").arg("h").arg(1).arg("a").arg("2.5").arg("b");
        assert_eq!(MemberWrite::of(&two), Some(("h", MemberWrite::Add(vec![(1.0, "a"), (2.5, "b")]))));
        for other in [
            Command::new("ZADD").arg("h").arg("NX").arg(1).arg("a"),
            Command::new("ZADD").arg("h").arg("nan").arg("a"),
            Command::new("ZADD").arg("h").arg(1),
            Command::new("ZREMRANGEBYRANK").arg("h").arg(1).arg(-2),
            Command::new("ZREMRANGEBYRANK").arg("h").arg(0).arg(3),
            Command::new("ZREM").arg("h").arg("a"),
            Command::set("h", b"v", None),
        ] {
            assert_eq!(MemberWrite::of(&other), None, "{other:?}");
        }
    }
}
