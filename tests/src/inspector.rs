//! [`Inspector`]: a V8 inspector session with the worker's isolate through the port
//! `wrangler dev --inspector-port` exposes (the Chrome DevTools Protocol over a websocket),
//! for the one thing the benches need: the `Profiler` domain's sampling CPU profile.
//!
//! [`CpuProfile`] is the profile as V8 sends it (a call tree and a list of samples with the
//! time between them); [`CpuProfile::self_times`] turns it into self time per node, and
//! [`CpuProfile::stacks`] gives each sample's stack, leaf first, so a reader can attribute
//! time to whatever it groups frames into.

use std::collections::HashMap;
use std::net::TcpStream;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// Frames V8 reports for time outside JavaScript and wasm: waiting for an event, the
/// embedder's own work, and garbage collection.
pub const IDLE: &str = "(idle)";
pub const PROGRAM: &str = "(program)";
pub const GARBAGE_COLLECTOR: &str = "(garbage collector)";

pub struct Inspector {
    socket: WebSocket<TcpStream>,
    next_id: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallFrame {
    pub function_name: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub line_number: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProfileNode {
    pub id: u64,
    #[serde(rename = "callFrame")]
    pub call_frame: CallFrame,
    #[serde(default)]
    pub children: Vec<u64>,
}

/// A `Profiler.stop` result: times in microseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuProfile {
    pub nodes: Vec<ProfileNode>,
    pub start_time: i64,
    pub end_time: i64,
    #[serde(default)]
    pub samples: Vec<u64>,
    #[serde(default)]
    pub time_deltas: Vec<i64>,
}

impl CpuProfile {
    /// The time each sample stands for (µs): from it to the next sample, the last one to the
    /// profile's end — the attribution DevTools uses.
    fn sample_durations(&self) -> Vec<i64> {
        let mut at = self.start_time;
        let times: Vec<i64> = self
            .time_deltas
            .iter()
            .map(|delta| {
                at += delta;
                at
            })
            .collect();
        (0..times.len())
            .map(|i| times.get(i + 1).copied().unwrap_or(self.end_time).saturating_sub(times[i]).max(0))
            .collect()
    }

    /// Self time per node id (µs).
    pub fn self_times(&self) -> HashMap<u64, i64> {
        let mut times = HashMap::new();
        for (node, duration) in self.samples.iter().zip(self.sample_durations()) {
            *times.entry(*node).or_default() += duration;
        }
        times
    }

    /// Every sample as (its stack of frames, leaf first, root excluded; its duration in µs).
    pub fn stacks(&self) -> Vec<(Vec<&CallFrame>, i64)> {
        let by_id: HashMap<u64, &ProfileNode> = self.nodes.iter().map(|n| (n.id, n)).collect();
        let mut parent: HashMap<u64, u64> = HashMap::new();
        for node in &self.nodes {
            for child in &node.children {
                parent.insert(*child, node.id);
            }
        }
        let mut memo: HashMap<u64, Vec<&CallFrame>> = HashMap::new();
        let mut stack_of = |id: u64| -> Vec<&CallFrame> {
            if let Some(stack) = memo.get(&id) {
                return stack.clone();
            }
            let mut stack = Vec::new();
            let mut current = Some(id);
            while let Some(node) = current.and_then(|id| by_id.get(&id)) {
                if parent.contains_key(&node.id) {
                    stack.push(&node.call_frame);
                }
                current = parent.get(&node.id).copied();
            }
            memo.insert(id, stack.clone());
            stack
        };
        self.samples.iter().zip(self.sample_durations()).map(|(node, duration)| (stack_of(*node), duration)).collect()
    }
}

impl Inspector {
    /// Connects to the inspector on 127.0.0.1:`port`: the first target `/json` lists (the
    /// worker's isolate), or the port's root when it lists none.
    pub fn connect(port: u16) -> Result<Self, String> {
        let listing = ureq::get(&format!("http://127.0.0.1:{port}/json"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_json::<Value>().ok());
        let url = listing
            .as_ref()
            .and_then(|targets| targets.as_array()?.first()?.get("webSocketDebuggerUrl")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("ws://127.0.0.1:{port}/"));
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("inspector at {port}: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(120))).map_err(|e| e.to_string())?;
        let (socket, _) =
            tungstenite::client(url.as_str(), stream).map_err(|e| format!("inspector handshake at {url}: {e}"))?;
        Ok(Self { socket, next_id: 1 })
    }

    /// Sends one command and waits for its result, skipping events.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket.send(Message::text(message)).map_err(|e| format!("{method}: {e}"))?;
        loop {
            let text = match self.socket.read().map_err(|e| format!("{method}: {e}"))? {
                Message::Text(text) => text.to_string(),
                Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                _ => continue,
            };
            let answer: Value = serde_json::from_str(&text).map_err(|e| format!("{method}: {e}: {text}"))?;
            if answer.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(error) = answer.get("error") {
                return Err(format!("{method} failed: {error}"));
            }
            return Ok(answer.get("result").cloned().unwrap_or(Value::Null));
        }
    }

    /// Enables the profiler with a sampling interval of `interval_us`.
    pub fn enable_profiler(&mut self, interval_us: u32) -> Result<(), String> {
        self.call("Profiler.enable", json!({}))?;
        self.call("Profiler.setSamplingInterval", json!({ "interval": interval_us }))?;
        Ok(())
    }

    /// Profiles what the isolate does while `work` runs.
    pub fn profile<R>(&mut self, work: impl FnOnce() -> R) -> Result<(R, CpuProfile), String> {
        self.call("Profiler.start", json!({}))?;
        let result = work();
        let stopped = self.call("Profiler.stop", json!({}))?;
        let profile = serde_json::from_value(stopped["profile"].clone()).map_err(|e| format!("profile: {e}"))?;
        Ok((result, profile))
    }
}
