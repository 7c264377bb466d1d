//! OKX data as the seed bots cache it: what TradingBoost's GRID stores under
//! `{exchange}:positions:{user}`, for the seed-data suite and the migrator benchmark.

use serde_json::{json, Value};

/// An OKX position object (`/api/v5/account/positions`), every value a string.
pub fn okx_position(inst_id: &str, pos_side: &str, pos: &str, notional_usd: &str) -> Value {
    json!({
        "adl": "1", "availPos": pos, "avgPx": "0.1234", "cTime": "1735360000000", "ccy": "USDT",
        "imr": "", "instId": inst_id, "instType": "SWAP", "last": "0.1240", "lever": "10",
        "liqPx": "0.0555", "margin": "12.34", "markPx": "0.1239", "mgnMode": "isolated",
        "mgnRatio": "8.5", "mmr": "0.6", "notionalUsd": notional_usd, "pos": pos, "posId": "1234567890",
        "posSide": pos_side, "upl": "0.05", "uplRatio": "0.004", "uTime": "1735363600000",
    })
}
