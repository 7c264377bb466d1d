//! The rule sets that ship with the migrator, as the TOML files in `migrator/rules/` (the
//! same format as `--rules FILE`, so `migrator rules show NAME` prints a file an operator can
//! copy and adapt):
//!
//! - `generic` (the default): legacy position and order keys into edgesync's namespace.
//! - `tradingboost`: TradingBoost-Strategy's standardized schema, in place, as its new code
//!   reads it.
//! - `qrl-api`: qrl-api's keys into edgesync's namespace as edgesync's records.

use std::path::Path;

use super::{file, Rule, RuleSet};

/// The built-in sets: name, what it is for, and its TOML.
pub const SETS: [(&str, &str); 3] = [
    ("generic", include_str!("../../rules/generic.toml")),
    ("tradingboost", include_str!("../../rules/tradingboost.toml")),
    ("qrl-api", include_str!("../../rules/qrl-api.toml")),
];

/// The set used when `--rules` is not given.
pub const DEFAULT: &str = "generic";

/// The TOML of a built-in set.
pub fn text(name: &str) -> Option<&'static str> {
    SETS.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

/// Why a name or path gives no rule set.
#[derive(Debug, thiserror::Error)]
pub enum RuleSetError {
    /// No built-in set has that name (`known`: the names that do exist).
    #[error("no built-in rule set `{name}` ({known})")]
    Unknown { name: String, known: String },
    /// Neither a built-in set's name nor a file that can be read.
    #[error("{path}: {source} (not a built-in set either: {known})")]
    Unreadable { path: String, source: std::io::Error, known: String },
    /// The TOML does not describe a rule set (`origin`: the built-in set or the file).
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// A built-in set, parsed.
pub fn load(name: &str) -> Result<RuleSet, RuleSetError> {
    let text = text(name).ok_or_else(|| RuleSetError::Unknown { name: name.to_owned(), known: names().join(", ") })?;
    file::parse(text, name)
        .map_err(|message| RuleSetError::Invalid { origin: format!("built-in set `{name}`"), message })
}

pub fn names() -> Vec<&'static str> {
    SETS.iter().map(|(name, _)| *name).collect()
}

/// `--rules NAME|FILE`: a built-in set by name, otherwise a TOML file.
pub fn resolve(name_or_path: &str) -> Result<RuleSet, RuleSetError> {
    if text(name_or_path).is_some() {
        return load(name_or_path);
    }
    let path = Path::new(name_or_path);
    let text = std::fs::read_to_string(path).map_err(|source| RuleSetError::Unreadable {
        path: name_or_path.to_owned(),
        source,
        known: names().join(", "),
    })?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("rules");
    file::parse(&text, stem).map_err(|message| RuleSetError::Invalid { origin: name_or_path.to_owned(), message })
}

/// The default set's rules (tests and benchmarks).
pub fn rules() -> Vec<Rule> {
    load(DEFAULT).expect("the default set parses").rules
}

#[cfg(test)]
mod tests {
    use edgesync_core::keys::pattern::Captures;
    use edgesync_core::records::position::SpotHolding;
    use serde_json::json;

    use super::super::record::{hash_fields, Input};
    use super::*;

    #[test]
    fn a_qrl_api_position_becomes_the_hash_the_balance_task_writes() {
        let set = load("qrl-api").unwrap();
        let rule = set.rules.iter().find(|r| r.name == "bot-position").unwrap();
        let super::super::Conversion::Record(spec) = &rule.conversion else { panic!("a record rule") };
        assert!(spec.shape.is_hash());
        // What bot.py writes (no locked amounts, no avg cost), then what cloud_tasks.py adds.
        let values = Captures::from([("symbol".to_owned(), "QRLUSDT".to_owned())]);
        let written =
            json!({"qrl_balance": "1000.0", "usdt_balance": "50.0", "updated_at": "2025-12-28T13:33:49.123456"});
        let input = Input { fields: written.as_object(), member: None, score: None, values: &values };
        let fields = hash_fields(&spec.build(&input).unwrap());
        let holding = SpotHolding::from_fields(&fields).unwrap();
        assert_eq!((holding.base_asset.as_str(), holding.quote_asset.as_str()), ("QRL", "USDT"));
        assert_eq!((holding.base_free.to_string(), holding.base_locked.to_string()), ("1000.0".into(), "0".into()));
        assert_eq!(holding.updated_at, 1_766_928_829_123);
        assert!(!fields.contains_key("avg_cost"), "absent, not `null`: {fields:?}");
        let full = json!({"qrl_balance": "1000.0", "usdt_balance": "50.0", "qrl_locked": "10.0", "avg_cost": "0.45",
                          "updated_at": "2025-12-28T13:33:49"});
        let fields = hash_fields(&spec.build(&Input { fields: full.as_object(), ..input }).unwrap());
        assert_eq!((fields["base_locked"].as_str(), fields["avg_cost"].as_str()), ("10.0", "0.45"));
        let broken = json!({"qrl_balance": "lots", "usdt_balance": "50.0", "updated_at": "2025-12-28T13:33:49"});
        assert!(spec.build(&Input { fields: broken.as_object(), ..input }).unwrap_err().contains("base_free"));
    }

    #[test]
    fn every_built_in_set_parses_and_owns_its_shapes() {
        for name in names() {
            let set = load(name).unwrap();
            assert_eq!(set.name, name);
            assert!(!set.families.is_empty(), "{name} names its legacy families");
        }
        let owner = |set: &str, key: &str| {
            load(set).unwrap().rules.iter().find(|r| r.from.matches(key)).map(|r| r.name.clone())
        };
        assert_eq!(owner("tradingboost", "okx:positions:7").as_deref(), Some("grid-positions"));
        assert_eq!(owner("tradingboost", "position:7:BTC-USDT-SWAP").as_deref(), Some("trading-cache-position"));
        assert_eq!(owner("tradingboost", "user:7:position:BTC-USDT-SWAP:short").as_deref(), Some("hyperrsi-position"));
        assert_eq!(owner("tradingboost", "user:7:position:BTC-USDT-SWAP:position_state"), None);
        assert!(load("tradingboost").unwrap().excludes("user:7:position:BTC-USDT-SWAP:long:tp_data"));
        assert_eq!(owner("qrl-api", "bot:QRLUSDT:price:history").as_deref(), Some("bot-price-history"));
        assert_eq!(owner("qrl-api", "bot:QRLUSDT:position:layers"), None);
        assert!(resolve("no-such-set-or-file").unwrap_err().to_string().contains("tradingboost"));
    }
}
