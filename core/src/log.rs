//! [`EventLog`]: where core reports what an operator must hear about outside a response —
//! one JSON object per event, which the worker writes as one console line. Core has no
//! runtime of its own, so the edge supplies the sink.

use serde_json::Value;

/// A sink for operator-facing events.
pub trait EventLog {
    /// Something is wrong with stored data or the deployment; nothing was lost.
    fn warn(&self, event: &Value);
}

/// Discards events (unit tests, tools without a console).
pub struct Silent;

impl EventLog for Silent {
    fn warn(&self, _: &Value) {}
}
