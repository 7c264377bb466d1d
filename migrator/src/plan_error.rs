//! [`PlanError`]: why a scan, a plan or a survey of the keys stopped — Redis, or the scratch
//! files the scan spills to.

use edgesync_core::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("scratch files in {0}: {1}")]
    Scratch(String, std::io::Error),
}
