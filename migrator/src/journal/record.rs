//! The journal's records inside a segment: the kind byte and chunk number that key them, the
//! head record (`h`), and their JSON encoding.

use serde::{Deserialize, Serialize};

use super::JournalError;

pub(super) const ENTRIES: u8 = b'e';
pub(super) const OUTCOMES: u8 = b'o';
pub(super) const HEADS: u8 = b'h';

/// An entry's head as its chunk's `h` record keeps it (sequence and state come from the
/// chunk's position and its outcome).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Head {
    pub(super) source: String,
    pub(super) keep_source: bool,
}

pub(super) fn key(kind: u8, first: u64) -> [u8; 9] {
    let mut key = [kind; 9];
    key[1..].copy_from_slice(&first.to_be_bytes());
    key
}

pub(super) fn first_of(key: &[u8]) -> Result<u64, JournalError> {
    let bytes = key.get(1..9).and_then(|b| <[u8; 8]>::try_from(b).ok());
    bytes.map(u64::from_be_bytes).ok_or_else(|| JournalError::Inconsistent("a record with a malformed key".into()))
}

pub(super) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JournalError> {
    serde_json::to_vec(value).map_err(JournalError::Encode)
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, JournalError> {
    serde_json::from_slice(bytes).map_err(JournalError::Corrupt)
}
