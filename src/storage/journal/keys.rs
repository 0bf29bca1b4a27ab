//! The byte layout of the journal's keys (see the column family table in the
//! [journal docs](super)). Every number is big-endian, so keys sort numerically.

use crate::model::rollup::BucketKey;
use crate::model::{RunId, Seq, TaskId};

/// Key of a rollup bucket: minute (u64 BE) + pool name.
pub(super) fn bucket_key_bytes((minute, pool): &BucketKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + pool.len());
    k.extend_from_slice(&minute.to_be_bytes());
    k.extend_from_slice(pool.as_bytes());
    k
}

/// Inverse of [`bucket_key_bytes`] (a pool name that is not UTF-8 is shown lossily).
pub(super) fn bucket_key_of(k: &[u8]) -> BucketKey {
    let minute = k
        .get(..8)
        .and_then(|m| m.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0);
    let pool = String::from_utf8_lossy(k.get(8..).unwrap_or_default());
    (minute, pool.as_ref().into())
}

/// Key of the run stream entry for `seq`.
pub(super) fn run_stream_key(run: RunId, seq: Seq) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[0] = b'R';
    k[1..17].copy_from_slice(&run.as_u128().to_be_bytes());
    k[17..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Writes the prefix of task `task`'s stream keys into `out` (cleared first).
pub(super) fn task_stream_prefix(run: RunId, task: &TaskId, out: &mut Vec<u8>) {
    out.clear();
    out.push(b'T');
    out.extend_from_slice(&run.as_u128().to_be_bytes());
    out.extend_from_slice(task.as_str().as_bytes());
    out.push(0);
}

/// The sequence number of an `events` or `snapshots` key, or the tail of a stream key.
pub(super) fn seq_of_key(key: &[u8]) -> Seq {
    key.try_into().map(u64::from_be_bytes).unwrap_or(0)
}
