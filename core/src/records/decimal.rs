//! Exact decimals in stored records: written as normalized decimal text (`"0.5"`, never a
//! float, never `"0.50000"`), `null` when unknown; read back from the same text.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serializer};

/// `Option<Decimal>` as normalized text or `null`.
pub mod optional {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Decimal>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => serializer.serialize_str(&d.normalize().to_string()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| crate::codec::parse_decimal(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// `Decimal` as normalized text.
pub mod required {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.normalize().to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        let text = String::deserialize(deserializer)?;
        crate::codec::parse_decimal(&text).map_err(serde::de::Error::custom)
    }
}

/// A map of decimals (fees per asset) as normalized text.
pub mod map {
    use serde::ser::SerializeMap;

    use super::*;

    pub fn serialize<S: Serializer>(value: &BTreeMap<String, Decimal>, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(value.len()))?;
        for (key, amount) in value {
            map.serialize_entry(key, &amount.normalize().to_string())?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, Decimal>, D::Error> {
        BTreeMap::<String, String>::deserialize(deserializer)?
            .into_iter()
            .map(|(key, text)| crate::codec::parse_decimal(&text).map(|d| (key, d)).map_err(serde::de::Error::custom))
            .collect()
    }
}
