//! `GET /health`: liveness, which store the worker runs on, the symbols it syncs, and
//! whether the cron is keeping up. Cloudflare records every cron run as a success (the `scheduled` handler cannot fail),
//! so health reads each task's status hash: a scheduled task whose last success is older than
//! twice its schedule is `degraded`. Without Redis configured the worker keeps data only in
//! this isolate's memory, and says so. Always 200 while the worker runs; `status` tells.
//! The report is kept for the isolate cache's fresh window (`MEMORY_TIER_TTL`), so Redis is
//! read at most once per window per isolate ([`kept`]); `?deep=1` reads it now.

pub mod kept;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::ApiResponse;
use crate::records::status::{TaskStatus, REDIS_DEFERRED};
use crate::store::tiered::Tier;
use crate::store::{Command, Reply, Store, StoreError};
use crate::sync::Task;
use crate::App;

/// Minutes between runs of a cron expression, roughly: `*/N` → N, a fixed minute → 60, a
/// fixed minute and hour → 1440, `*` → 1.
pub fn schedule_minutes(cron: &str) -> i64 {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    match fields.as_slice() {
        [minute, hour, ..] => match (minute.strip_prefix("*/").and_then(|n| n.parse::<i64>().ok()), *minute, *hour) {
            (Some(n), _, _) if n > 0 => n,
            (_, "*", _) => 1,
            (_, _, "*") => 60,
            _ => 1440,
        },
        _ => 60,
    }
}

/// Every scheduled task's status hash, with `state`: `ok`, `degraded` (no success within two
/// schedule intervals), `failing` (last run failed) or `pending` (never ran).
pub async fn task_statuses(app: &App<'_>) -> Result<Value, StoreError> {
    let mut intervals: BTreeMap<&'static str, i64> = BTreeMap::new();
    for (cron, tasks) in &app.config.sync.schedules {
        for task in tasks {
            let minutes = schedule_minutes(cron);
            intervals.entry(task.name()).and_modify(|m| *m = (*m).min(minutes)).or_insert(minutes);
        }
    }
    let commands: Vec<Command> =
        Task::ALL.iter().map(|t| Command::new("HGETALL").arg(app.config.keys.sync_status(t.name()))).collect();
    // Through the tiers: when Redis fails, the durable copy answers.
    let replies = app.store.pipeline(&commands).await?;
    let now = app.clock.now_ms();
    let mut statuses = Map::new();
    for (task, reply) in Task::ALL.iter().zip(replies) {
        // A status hash that cannot be read (another type, fields that are not numbers)
        // counts as absent: the task's next run rewrites it.
        let fields: BTreeMap<String, String> = match reply.ok().map(Reply::into_pairs) {
            Some(Ok(pairs)) => pairs.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        let status = TaskStatus::from_fields(&fields).unwrap_or_default();
        let interval = intervals.get(task.name()).copied();
        let last_ok = status.last_ok;
        let failing = status.consecutive_failures > 0;
        let state = match (interval, last_ok) {
            (None, _) => "unscheduled",
            (Some(_), None) if fields.is_empty() => "pending",
            (Some(minutes), Some(ok)) if now - ok > 2 * minutes * 60_000 => "degraded",
            (Some(_), None) => "degraded",
            _ if status.redis_deferred => crate::records::status::REDIS_DEFERRED,
            _ if failing => "failing",
            _ => "ok",
        };
        let mut entry: Map<String, Value> =
            fields.into_iter().map(|(k, v)| (k.clone(), crate::records::status::field_json(&k, v))).collect();
        entry.insert("state".into(), json!(state));
        if let Some(minutes) = interval {
            entry.insert("schedule_minutes".into(), json!(minutes));
        }
        statuses.insert(task.name().into(), Value::Object(entry));
    }
    Ok(Value::Object(statuses))
}

/// `deep`: read the task statuses from Redis now, rather than reuse this isolate's report
/// from within the fresh window (`MEMORY_TIER_TTL`).
pub async fn health(app: &App<'_>, deep: bool) -> ApiResponse {
    let now = app.clock.now_ms();
    let kept = app.health_report.fresh(now, app.config.tiers.memory_fresh_for);
    if let Some(body) = kept.filter(|_| !deep) {
        return ApiResponse::json(200, &body).with_header("cache-control", "no-store");
    }
    let body = report(app).await;
    app.health_report.keep(body.clone(), now);
    ApiResponse::json(200, &body).with_header("cache-control", "no-store")
}

/// True when a task's state makes the whole report `degraded`: its last success is too old,
/// or its last writes wait in the durable copy.
fn any_degraded(tasks: &Value) -> bool {
    tasks.as_object().is_some_and(|t| t.values().any(|s| s["state"] == "degraded" || s["state"] == REDIS_DEFERRED))
}

async fn report(app: &App<'_>) -> Value {
    let version = env!("CARGO_PKG_VERSION");
    let durable = match app.store.durable_copy() {
        Some(durable) => match durable.stats().await {
            Ok(stats) => Some(json!(stats)),
            Err(error) => Some(json!({ "error": error.to_string() })),
        },
        None => None,
    };
    let mut body = match (&app.config.redis, app.store.embedded_tier()) {
        (None, Some(Tier::Durable)) => match task_statuses(app).await {
            Ok(tasks) => {
                let status = if any_degraded(&tasks) { "degraded" } else { "ok" };
                json!({ "status": status, "store": "durable", "version": version, "tasks": tasks })
            }
            Err(error) => {
                json!({ "status": "degraded", "store": "durable", "version": version, "error": error.to_string() })
            }
        },
        (None, _) => json!({
            "status": "ok",
            "store": "memory",
            "version": version,
            "warning": "no Redis configured (UPSTASH_REDIS_REST_URL unset) and no durable copy: data lives only in this isolate's memory",
        }),
        (Some(_), _) => match task_statuses(app).await {
            Ok(tasks) if app.store.durable_age_ms().is_some() => json!({
                "status": "degraded",
                "store": "redis",
                "version": version,
                "redis": "unavailable: the durable copy answered",
                "tasks": tasks,
            }),
            Ok(tasks) => {
                let status = if any_degraded(&tasks) { "degraded" } else { "ok" };
                json!({ "status": status, "store": "redis", "version": version, "tasks": tasks })
            }
            Err(error) => json!({
                "status": "degraded",
                "store": "redis",
                "version": version,
                "redis": format!("unavailable: {error}"),
            }),
        },
    };
    if let Some(object) = body.as_object_mut() {
        let symbols: Vec<&str> = app.config.symbols.iter().map(|s| s.as_str()).collect();
        object.insert("symbols".into(), json!(symbols));
        object.insert("cpu".into(), cpu_budget(app));
        if let Some(durable) = durable {
            object.insert("durable".into(), durable);
        }
    }
    body
}

/// The cron's CPU per invocation as the budget model estimates it for this configuration,
/// with a warning when an expression does not fit the free plan ([`crate::sync::cpu_budget`]).
fn cpu_budget(app: &App<'_>) -> Value {
    use crate::sync::cpu_budget::{check, warning, FREE_PLAN_CPU_MS};
    let symbols = app.config.symbols.len();
    let budgets = check(&app.config.sync.schedules, symbols, app.store.durable_copy().is_some());
    let mut cpu = json!({ "free_plan_limit_ms": FREE_PLAN_CPU_MS, "schedules": budgets });
    if let (Some(text), Some(object)) = (warning(&budgets, symbols), cpu.as_object_mut()) {
        object.insert("warning".into(), json!(text));
    }
    cpu
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_app::{with_app, NoNetwork};

    fn cpu_report(vars: &[(&str, &str)]) -> Value {
        with_app(vars, &NoNetwork, |app| {
            let response = futures_executor::block_on(health(app, true));
            serde_json::from_slice::<Value>(&response.body).unwrap()["cpu"].clone()
        })
    }

    #[test]
    fn health_warns_when_a_schedule_exceeds_the_free_plan_cpu() {
        let symbols = "QRLUSDT,BTCUSDT,ETHUSDT,MXUSDT,SOLUSDT,XRPUSDT,DOGEUSDT,ADAUSDT,TRXUSDT,LINKUSDT,\
                       DOTUSDT,LTCUSDT,BCHUSDT,AVAXUSDT,ATOMUSDT,XLMUSDT,NEARUSDT,UNIUSDT,FILUSDT,APTUSDT";
        let past = cpu_report(&[("SYMBOLS", symbols)]);
        assert_eq!(past["schedules"][0]["fits_free_plan"], false, "{past}");
        assert!(past["warning"].as_str().is_some_and(|w| w.contains("Split CRON_TASKS")), "{past}");

        let split = cpu_report(&[("CRON_TASKS", "*/3 * * * *=balance")]);
        assert_eq!(split["schedules"][0]["fits_free_plan"], true, "{split}");
        assert!(split.get("warning").is_none(), "{split}");
    }

    #[test]
    fn schedules_read_as_minutes() {
        assert_eq!(schedule_minutes("*/3 * * * *"), 3);
        assert_eq!(schedule_minutes("* * * * *"), 1);
        assert_eq!(schedule_minutes("5 * * * *"), 60);
        assert_eq!(schedule_minutes("0 4 * * *"), 1440);
    }
}
