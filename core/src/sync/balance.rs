//! The balance task: `/api/v3/account`, complete, becomes
//! - `P:account:{exchange}:{account}`: `{fetched_at, fetched_at_iso, account}` where `account`
//!   is MEXC's response verbatim — every field that arrived (`makerCommission`, `canTrade`,
//!   `permissions`, …, including ones this code does not know) and every asset — permanent;
//! - per configured symbol, the position hash `P:position:{account}:{exchange}:{symbol}:spot`
//!   (base and quote asset, free and locked, `updated_at`) and its entry `{symbol}:spot` in
//!   `P:position-index:{account}:{exchange}`, permanent;
//! - the raw response (`account_info`) and its history.
//!
//! Spot holdings have no direction; their position side is `spot`.

use serde_json::json;

use super::settings::split_symbol;
use super::snapshot::Snapshot;
use super::{raw, SyncError};
use crate::codec::{encode_json, iso8601_ms};
use crate::keys::{Exchange, Segment};
use crate::records::account::AccountRecordRef;
use crate::records::position::SpotHolding;
use crate::store::Command;
use crate::App;

/// The position side of spot holdings.
pub const SPOT_SIDE: &str = "spot";

pub async fn run(app: &App<'_>, snapshot: &Snapshot<'_>) -> Result<Vec<Command>, SyncError> {
    let response = snapshot.account().await?;
    let fetched = &*response.fetched;
    let keys = &app.config.keys;
    let account_id = &app.config.account_id;
    let fetched_at = fetched.fetched_at_ms;
    let fetched_at_iso = iso8601_ms(fetched_at);
    let record = AccountRecordRef {
        account: fetched.raw_json(),
        account_id: account_id.as_str(),
        exchange: Exchange::Mexc.as_str(),
        fetched_at,
        fetched_at_iso: &fetched_at_iso,
    };
    let mut commands = vec![Command::set(&keys.account(Exchange::Mexc, account_id), &encode_json(&record), None)];
    let side = Segment::new("side", SPOT_SIDE).expect("a valid constant");
    let mut index_members = Vec::new();
    for symbol in &app.config.symbols {
        let (base, quote) = split_symbol(symbol.as_str(), &app.config.sync.quote_assets)
            .ok_or_else(|| SyncError::Incomplete(format!("cannot split {symbol} into base and quote")))?;
        let (base_free, base_locked) = fetched.value.holding(base);
        let (quote_free, quote_locked) = fetched.value.holding(quote);
        let holding = SpotHolding {
            symbol: symbol.to_string(),
            base_asset: base.to_owned(),
            quote_asset: quote.to_owned(),
            base_free,
            base_locked,
            quote_free,
            quote_locked,
            updated_at: fetched_at,
        };
        commands.push(Command::hset(&keys.position(account_id, Exchange::Mexc, symbol, &side), &holding.fields()));
        index_members.push(format!("{symbol}:{SPOT_SIDE}"));
    }
    commands.push(Command::sadd(&keys.position_index(account_id, Exchange::Mexc), &index_members));
    if response.owner {
        commands.extend(raw::writes(app, fetched, None, json!({ "task": "balance" }))?);
    }
    Ok(commands)
}
