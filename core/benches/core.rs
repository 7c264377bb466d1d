//! Benchmarks of the hot, pure paths: building and classifying keys, and the codec round
//! trip of what the price task stores and the API reads. Each group has a baseline measured
//! in the same run (a bare `format!`, a bare `serde_json` of plain strings), so the numbers
//! read as a ratio: what validation and exact decimals cost. The glob group pins the matcher's
//! linear time: a hostile pattern within 2× of `*` on the same key.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use edgesync_core::exchange::model::Ticker24h;
use edgesync_core::keys::{Exchange, KeySpace, Segment};
use edgesync_core::sync::price::PriceRecord;
use rust_decimal::Decimal;

fn keys(c: &mut Criterion) {
    let keys = KeySpace::new("qrl").unwrap();
    let symbol = Segment::new("symbol", "QRLUSDT").unwrap();
    let account = Segment::new("account", "main").unwrap();
    let side = Segment::new("side", "long").unwrap();
    let mut group = c.benchmark_group("keys");
    group.bench_function("baseline_format", |b| {
        b.iter(|| format!("{}:{}:price:mexc:{}:latest", black_box("qrl"), black_box("v1"), black_box("QRLUSDT")))
    });
    group.bench_function("price_latest", |b| b.iter(|| keys.price_latest(Exchange::Mexc, black_box(&symbol))));
    group.bench_function("position", |b| {
        b.iter(|| keys.position(black_box(&account), Exchange::Mexc, black_box(&symbol), black_box(&side)))
    });
    group.bench_function("validate_segment", |b| b.iter(|| Segment::new("symbol", black_box("QRLUSDT")).unwrap()));
    let key = keys.price_latest(Exchange::Mexc, &symbol);
    group.bench_function("classify", |b| b.iter(|| keys.classify(black_box(&key))));
    group.finish();
}

fn codec(c: &mut Criterion) {
    let record = PriceRecord {
        symbol: "QRLUSDT".into(),
        price: "0.012345678901".parse::<Decimal>().unwrap(),
        volume_24h: Some("98765.4321".parse::<Decimal>().unwrap()),
        ts: 1_700_000_000_000,
    };
    let mut group = c.benchmark_group("codec");
    group.bench_function("baseline_strings_round_trip", |b| {
        let plain = serde_json::json!({"symbol": "QRLUSDT", "price": "0.012345678901", "volume_24h": "98765.4321", "ts": 1_700_000_000_000_i64});
        b.iter(|| {
            let bytes = serde_json::to_vec(black_box(&plain)).unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        })
    });
    group.bench_function("price_record_round_trip", |b| {
        b.iter(|| {
            let bytes = serde_json::to_vec(black_box(&record)).unwrap();
            serde_json::from_slice::<PriceRecord>(&bytes).unwrap()
        })
    });
    let ticker = include_str!("../../fixtures/mexc/ticker_24hr.json");
    group.bench_function("ticker_24hr_decode", |b| {
        b.iter(|| serde_json::from_str::<Ticker24h>(black_box(ticker)).unwrap())
    });
    group.finish();
}

/// The glob matcher on a 256-byte key: `*` (the baseline) against the pattern that takes a
/// backtracking matcher exponential time (CVE-2022-36021). Both compile and match.
fn glob(c: &mut Criterion) {
    let key = "a".repeat(256);
    let mut group = c.benchmark_group("glob");
    group.bench_function("baseline_star", |b| b.iter(|| edgesync_core::glob::matches(black_box("*"), black_box(&key))));
    group.bench_function("hostile_stars", |b| {
        b.iter(|| edgesync_core::glob::matches(black_box("*a*a*a*a*a*a*a*a*a*a*b"), black_box(&key)))
    });
    group.finish();
}

criterion_group!(benches, keys, codec, glob);
criterion_main!(benches);
