//! The built-in rules (seeds 001 and 003), in the order keys are matched.

use std::collections::BTreeMap;

use edgesync_core::keys::pattern::KeyPattern;

use super::{Conversion, Rule};

fn pattern(text: &str) -> KeyPattern {
    KeyPattern::parse(text).expect("built-in patterns are valid")
}

fn rule(name: &str, from: &str, to: &str, defaults: &[(&str, &str)], types: &[&str], conversion: Conversion) -> Rule {
    Rule {
        name: name.to_owned(),
        from: pattern(from),
        to: pattern(to),
        defaults: defaults.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        types: types.iter().map(|t| t.to_string()).collect(),
        conversion,
    }
}

pub fn rules() -> Vec<Rule> {
    let position = "position:{user}:{exchange}:{symbol}:{side}";
    vec![
        rule(
            "order-placed",
            "{exchange}:user:{user}:symbol:{symbol}:order_placed",
            "orders:{exchange}:user:{user}:symbol:{symbol}:order_placed",
            &[],
            &["hash"],
            Conversion::Keep,
        ),
        rule(
            "orders",
            "{exchange}:user:{user}:symbol:{symbol}:orders",
            "orders:{exchange}:user:{user}:symbol:{symbol}:orders",
            &[],
            &["zset"],
            Conversion::Keep,
        ),
        rule(
            "order-placed-index",
            "{exchange}:user:{user}:symbol:{symbol}:order_placed_index",
            "orders:{exchange}:user:{user}:symbol:{symbol}:order_placed_index",
            &[],
            &["set"],
            Conversion::Keep,
        ),
        rule(
            "bot-price-latest",
            "bot:{symbol}:price:latest",
            "price:mexc:{symbol}:latest",
            &[],
            &["string"],
            Conversion::Keep,
        ),
        rule(
            "mexc-raw-latest",
            "mexc:raw:{endpoint}:latest",
            "raw:mexc:{endpoint}:latest",
            &[],
            &["string"],
            Conversion::Keep,
        ),
        rule(
            "mexc-raw-history",
            "mexc:raw:{endpoint}:history",
            "raw:mexc:{endpoint}:history",
            &[],
            &["zset"],
            Conversion::Keep,
        ),
        rule(
            "user-position",
            "user:{user}:position:{symbol}:{side}",
            position,
            &[("exchange", "okx")],
            &["string", "hash"],
            Conversion::JsonToHash,
        ),
        rule(
            "positions-array",
            "{exchange}:positions:{user}",
            position,
            &[],
            &["string"],
            Conversion::ExplodeJsonArray {
                index: pattern("position-index:{user}:{exchange}"),
                member: pattern("{symbol}:{side}"),
            },
        ),
        rule(
            "position",
            "position:{user}:{symbol}",
            position,
            &[("exchange", "okx")],
            &["string", "hash"],
            Conversion::JsonToHash,
        ),
    ]
}
