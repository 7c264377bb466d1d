//! `GET /metrics`: edgesync's counters in the Prometheus text exposition format (0.0.4),
//! behind the read token. What this isolate counted (tier reads per class and outcome,
//! unreadable and discarded values, read-through exchange calls) — counters start at zero
//! with each isolate, which Prometheus's `rate()` treats as a reset — and what the store says
//! of each sync task (runs, failures, last duration, last success) and of the durable copy.
//!
//! The format is written here rather than with a client library: it is three lines per
//! family and two escaping rules, and a library's registry would only copy values that
//! already live in [`TierStats`](crate::store::tiered::TierStats) and the status hashes.

use std::fmt::Write as _;

use super::{ApiError, ApiResponse};
use crate::records::status::TaskStatus;
use crate::store::{Command, Store};
use crate::sync::Task;
use crate::App;

/// The content type Prometheus expects for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A text-format document being written, family by family.
#[derive(Default)]
pub struct Exposition(String);

/// `\` and newline escaped (and `"` in label values), as the format requires.
fn escape(text: &str, quotes: bool) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '"' if quotes => escaped.push_str("\\\""),
            c => escaped.push(c),
        }
    }
    escaped
}

impl Exposition {
    /// Starts a family: `kind` is `counter` or `gauge`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.0, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        self
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<f64>) -> &mut Self {
        self.0.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> =
                labels.iter().map(|(label, value)| format!("{label}=\"{}\"", escape(value, true))).collect();
            let _ = write!(self.0, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.0, " {}", value.into());
        self
    }

    /// A counter family with one sample per data class.
    pub fn per_class(&mut self, name: &str, help: &str, counts: &std::collections::BTreeMap<&str, u64>) -> &mut Self {
        self.family(name, "counter", help);
        for (class, n) in counts {
            self.sample(name, &[("class", class)], *n as f64);
        }
        self
    }

    pub fn finish(self) -> String {
        self.0
    }
}

pub async fn metrics(app: &App<'_>) -> Result<ApiResponse, ApiError> {
    let mut out = Exposition::default();
    let stats = app.store.memory_tier().stats();

    out.family(
        "edgesync_tier_reads_total",
        "counter",
        "Reads through the tiers in this isolate, by data class and outcome.",
    );
    for (class, c) in &stats.classes {
        for (outcome, n) in [
            ("l1_hit", c.l1_hits),
            ("l1_miss", c.l1_misses),
            ("redis_hit", c.l2_hits),
            ("redis_miss", c.l2_misses),
            ("stale", c.stale_served),
            ("coalesced", c.coalesced),
        ] {
            out.sample("edgesync_tier_reads_total", &[("class", class), ("outcome", outcome)], n as f64);
        }
    }
    out.per_class(
        "edgesync_unreadable_values_total",
        "Permanent values that did not decode (left untouched), by class.",
        &stats.unreadable,
    );
    out.per_class(
        "edgesync_discarded_values_total",
        "Cache values that did not decode and were discarded, by class.",
        &stats.discarded,
    );
    out.family("edgesync_memory_tier_entries", "gauge", "Entries in this isolate's memory tier.");
    out.sample("edgesync_memory_tier_entries", &[], stats.entries as f64);
    out.family(
        "edgesync_read_through_exchange_calls_total",
        "counter",
        "Exchange calls made for cache misses in this isolate.",
    );
    out.sample("edgesync_read_through_exchange_calls_total", &[], app.flights.exchange_calls() as f64);
    out.family(
        "edgesync_read_through_refused_total",
        "counter",
        "Cache misses refused by the isolate's exchange-call budget.",
    );
    out.sample("edgesync_read_through_refused_total", &[], app.flights.budget_refusals() as f64);

    let commands: Vec<Command> =
        Task::ALL.iter().map(|t| Command::new("HGETALL").arg(app.config.keys.sync_status(t.name()))).collect();
    let store: &dyn Store = app.store;
    let replies = store.pipeline(&commands).await?;
    let statuses: Vec<(&str, TaskStatus)> = Task::ALL
        .iter()
        .zip(replies)
        .map(|(task, reply)| {
            let fields = reply.ok().and_then(|r| r.into_pairs().ok()).unwrap_or_default().into_iter().collect();
            (task.name(), TaskStatus::from_fields(&fields).unwrap_or_default())
        })
        .collect();
    out.family("edgesync_sync_runs_total", "counter", "Cron runs of each sync task (from its status hash).");
    for (task, status) in &statuses {
        out.sample("edgesync_sync_runs_total", &[("task", task)], status.runs as f64);
    }
    out.family("edgesync_sync_failures_total", "counter", "Failed cron runs of each sync task.");
    for (task, status) in &statuses {
        out.sample("edgesync_sync_failures_total", &[("task", task)], status.failures as f64);
    }
    out.family("edgesync_sync_last_duration_seconds", "gauge", "How long each task's last run took.");
    for (task, status) in &statuses {
        if let Some(ms) = status.duration_ms {
            out.sample("edgesync_sync_last_duration_seconds", &[("task", task)], ms as f64 / 1000.0);
        }
    }
    out.family("edgesync_sync_last_success_timestamp_seconds", "gauge", "When each task last succeeded (Unix time).");
    for (task, status) in &statuses {
        if let Some(ms) = status.last_ok {
            out.sample("edgesync_sync_last_success_timestamp_seconds", &[("task", task)], ms as f64 / 1000.0);
        }
    }
    out.family(
        "edgesync_sync_redis_deferred",
        "gauge",
        "1 while a task's last writes wait in the durable copy for Redis.",
    );
    for (task, status) in &statuses {
        out.sample("edgesync_sync_redis_deferred", &[("task", task)], u8::from(status.redis_deferred));
    }
    if let Some(durable) = app.store.durable_copy() {
        if let Ok(stats) = durable.stats().await {
            out.family("edgesync_durable_keys", "gauge", "Keys the durable copy holds.");
            out.sample("edgesync_durable_keys", &[], stats.keys as f64);
            out.family(
                "edgesync_durable_pending_keys",
                "gauge",
                "Keys written while Redis was unavailable, not replayed yet.",
            );
            out.sample("edgesync_durable_pending_keys", &[], stats.pending as f64);
            out.family(
                "edgesync_durable_refused_keys_total",
                "counter",
                "New keys the durable copy refused at its bound.",
            );
            out.sample("edgesync_durable_refused_keys_total", &[], stats.refused_keys as f64);
        }
    }
    Ok(ApiResponse {
        status: 200,
        headers: vec![("content-type".into(), CONTENT_TYPE.into()), ("cache-control".into(), "no-store".into())],
        body: out.finish().into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaping_follow_the_text_format() {
        let mut out = Exposition::default();
        out.family("x_total", "counter", "a \\ help\nline").sample("x_total", &[("k", "a\"b\\c\nd")], 3.0);
        out.family("y", "gauge", "plain").sample("y", &[], 0.5);
        assert_eq!(
            out.finish(),
            "# HELP x_total a \\\\ help\\nline\n# TYPE x_total counter\nx_total{k=\"a\\\"b\\\\c\\nd\"} 3\n# HELP y plain\n# TYPE y gauge\ny 0.5\n"
        );
    }
}
