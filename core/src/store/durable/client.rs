//! [`DurableStore`]: the durable copy as seen from the worker — a [`Store`] (the whole store
//! when no Redis is configured) plus what the tiers and the replay need: deferred writes,
//! pending keys and their acknowledgement, stats. The transport is the edge's (a Durable
//! Object stub in the worker); it carries [`DurableRequest`]s and their answers.

use async_trait::async_trait;

use super::wire::{
    decode_response, encode_request, encode_run, DurableRequest, DurableResponse, DurableStats, PendingKey, WireReply,
};
use crate::store::{Command, Replies, Store, StoreError};

/// Carries one request to the copy and its answer back, both as encoded by core's wire
/// ([`DurableRequest`], [`DurableResponse`]).
#[async_trait(?Send)]
pub trait DurableTransport {
    async fn call(&self, request: Vec<u8>) -> Result<Vec<u8>, StoreError>;
}

/// Which keys the copy keeps (the edge decides from the key schema: permanent data).
pub type Keeps = Box<dyn Fn(&str) -> bool>;

/// What a batch run on the copy answered.
#[derive(Debug)]
pub struct CopyRun {
    pub replies: Replies,
    /// The oldest write time of the rows the batch read (a read's `Age`).
    pub oldest_written_at_ms: Option<i64>,
    /// Keys the copy holds pending after a batch that writes (0 after one that only reads):
    /// the writer replays them once Redis takes writes again, with no request of its own to ask.
    pub pending: u64,
}

pub struct DurableStore {
    transport: Box<dyn DurableTransport>,
    keeps: Keeps,
}

fn unexpected(what: &str, response: DurableResponse) -> StoreError {
    match response {
        DurableResponse::Error { message } => StoreError::Unavailable(format!("durable copy: {message}")),
        other => StoreError::UnexpectedReply { command: what.into(), detail: format!("{other:?}") },
    }
}

impl DurableStore {
    pub fn new(transport: Box<dyn DurableTransport>, keeps: Keeps) -> Self {
        Self { transport, keeps }
    }

    async fn call(&self, request: Vec<u8>) -> Result<DurableResponse, StoreError> {
        let answer = self.transport.call(request).await?;
        decode_response(&answer).map_err(|detail| StoreError::UnexpectedReply { command: "durable".into(), detail })
    }

    async fn call_typed(&self, request: &DurableRequest) -> Result<DurableResponse, StoreError> {
        self.call(encode_request(request)).await
    }

    /// True for keys the copy keeps.
    pub fn keeps(&self, key: &str) -> bool {
        (self.keeps)(key)
    }

    /// Runs `commands` on the copy; `deferred` marks the keys they write pending.
    pub async fn run(&self, commands: &[Command], deferred: bool) -> Result<CopyRun, StoreError> {
        self.run_borrowed(&commands.iter().collect::<Vec<_>>(), deferred).await
    }

    /// [`DurableStore::run`] of borrowed commands (the permanent ones of a batch, uncopied).
    pub async fn run_borrowed(&self, commands: &[&Command], deferred: bool) -> Result<CopyRun, StoreError> {
        match self.call(encode_run(commands, deferred)).await? {
            DurableResponse::Replies { replies, oldest_written_at_ms, pending } if replies.len() == commands.len() => {
                let replies = replies
                    .into_iter()
                    .map(WireReply::decode)
                    .collect::<Result<Replies, String>>()
                    .map_err(|detail| StoreError::UnexpectedReply { command: "durable run".into(), detail })?;
                Ok(CopyRun { replies, oldest_written_at_ms, pending })
            }
            other => Err(unexpected("durable run", other)),
        }
    }

    pub async fn pending(&self, limit: usize) -> Result<Vec<PendingKey>, StoreError> {
        match self.call_typed(&DurableRequest::Pending { limit }).await? {
            DurableResponse::Pending { keys } => Ok(keys),
            other => Err(unexpected("durable pending", other)),
        }
    }

    /// Acknowledges replayed keys at their stamps; returns how many marks were cleared.
    pub async fn replayed(&self, keys: Vec<(String, u64)>) -> Result<u64, StoreError> {
        match self.call_typed(&DurableRequest::Replayed { keys }).await? {
            DurableResponse::Replayed { cleared } => Ok(cleared),
            other => Err(unexpected("durable replayed", other)),
        }
    }

    pub async fn stats(&self) -> Result<DurableStats, StoreError> {
        match self.call_typed(&DurableRequest::Stats).await? {
            DurableResponse::Stats(stats) => Ok(stats),
            other => Err(unexpected("durable stats", other)),
        }
    }
}

#[async_trait(?Send)]
impl Store for DurableStore {
    async fn pipeline(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        Ok(self.run(commands, false).await?.replies)
    }

    /// Atomic: the Durable Object runs one request at a time.
    async fn transaction(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        self.pipeline(commands).await
    }
}
