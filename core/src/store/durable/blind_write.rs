//! [`is_blind_write`]: the writes whose result does not depend on what the key held, so the
//! copy runs them without loading the key's row first. The cron's raw responses and records
//! are `SET`s of tens of KB; loading and decoding the old value only to replace it was most of
//! the Durable Object's work for them.

use crate::store::Command;

/// `SET key value` or `SET key value EX|PX n` with a positive integer `n`: what the key held
/// (any type, or nothing) does not change the result, and the reply is `OK`. With `NX`, `XX`,
/// `GET` or `KEEPTTL` it does.
pub fn is_blind_write(command: &Command) -> bool {
    if command.name() != "SET" {
        return false;
    }
    match command.parts().len() {
        3 => true,
        5 => {
            let unit = command.text(2).unwrap_or_default();
            let positive = command.text(3).and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n > 0);
            (unit.eq_ignore_ascii_case("EX") || unit.eq_ignore_ascii_case("PX")) && positive
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn plain_sets_with_or_without_an_expiry_are_blind_and_conditional_ones_are_not() {
        assert!(is_blind_write(&Command::set("k", b"v", None)));
        assert!(is_blind_write(&Command::set("k", &[0xff], Some(Duration::from_secs(5)))));
        assert!(is_blind_write(&Command::new("SET").arg("k").arg("v").arg("px").arg(1500)));
        for other in [
            Command::new("SET").arg("k").arg("v").arg("NX"),
            Command::new("SET").arg("k").arg("v").arg("EX").arg(0),
            Command::new("SET").arg("k").arg("v").arg("KEEPTTL"),
            Command::new("SET").arg("k").arg("v").arg("EX").arg(5).arg("GET"),
            Command::new("APPEND").arg("k").arg("v"),
            Command::hset("k", &[("f", "v")]),
        ] {
            assert!(!is_blind_write(&other), "{other:?}");
        }
    }
}
