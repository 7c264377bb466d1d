//! [`AccountRecord`]: `P:account:{exchange}:{account}` — MEXC's account response verbatim
//! (every field that arrived, every asset) with when it was fetched. Fields are in key order,
//! so the stored JSON is the same whichever way it was built.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// MEXC's `/api/v3/account` response, as it came.
    pub account: Value,
    pub account_id: String,
    pub exchange: String,
    pub fetched_at: i64,
    pub fetched_at_iso: String,
}

/// [`AccountRecord`] as the balance task writes it: the response borrowed as MEXC's bytes
/// ([`crate::exchange::Fetched::raw_json`]). Same fields in the same order; the response
/// keeps MEXC's own key order (the owned record, read back, writes its keys sorted).
#[derive(Debug, Serialize)]
pub struct AccountRecordRef<'a> {
    pub account: &'a RawValue,
    pub account_id: &'a str,
    pub exchange: &'a str,
    pub fetched_at: i64,
    pub fetched_at_iso: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_writes_this_json() {
        let record = AccountRecord {
            account: json!({"canTrade": true, "balances": [{"asset": "QRL", "free": "1.5", "locked": "0"}]}),
            account_id: "main".into(),
            exchange: "mexc".into(),
            fetched_at: 1_700_000_000_000,
            fetched_at_iso: "2023-11-14T22:13:20.000Z".into(),
        };
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(
            text,
            r#"{"account":{"balances":[{"asset":"QRL","free":"1.5","locked":"0"}],"canTrade":true},"account_id":"main","exchange":"mexc","fetched_at":1700000000000,"fetched_at_iso":"2023-11-14T22:13:20.000Z"}"#
        );
        assert_eq!(serde_json::from_str::<AccountRecord>(&text).unwrap(), record);
        let account = RawValue::from_string(record.account.to_string()).unwrap();
        let borrowed = AccountRecordRef {
            account: &account,
            account_id: "main",
            exchange: "mexc",
            fetched_at: record.fetched_at,
            fetched_at_iso: &record.fetched_at_iso,
        };
        assert_eq!(serde_json::to_string(&borrowed).unwrap(), text, "the write side writes the same bytes");
    }
}
