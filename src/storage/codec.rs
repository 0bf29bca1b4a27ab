//! Record codec: a versioned envelope with a CRC32C around a bincode payload.
//!
//! Every use of bincode in troupe is in this file. bincode is unmaintained upstream
//! (RUSTSEC-2025-0141; 3.0.0 is a tombstone), so it is pinned to 2.0.x and the envelope keeps a
//! format byte that lets a later codec read journals written by this one.
//!
//! # Envelope (the value stored under each key)
//! | bytes | field |
//! |---|---|
//! | 0 | format version, [`FORMAT_VERSION`] (1 = bincode 2 "standard": little-endian varints) |
//! | 1..3 | schema version of the payload type, u16 little-endian ([`EVENT_SCHEMA_VERSION`] for events, [`SNAPSHOT_SCHEMA_VERSION`] for snapshots) |
//! | 3..7 | CRC32C (Castagnoli), u32 little-endian, over: the record's sequence number as 8 big-endian bytes, bytes 0..3, and the payload |
//! | 7.. | payload: bincode 2 (serde) encoding of [`EventRecord`] or [`State`] |
//!
//! Folding the sequence number into the checksum means a record copied or restored under the
//! wrong key fails its check instead of replaying in the wrong place. A record that fails its
//! checksum or decode yields a [`CodecError`] naming its sequence number; nothing is skipped.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::{EventRecord, Seq, State, EVENT_SCHEMA_VERSION};

/// Envelope format written by this version.
pub const FORMAT_VERSION: u8 = 1;
/// Schema version of the snapshot payload ([`State`]).
/// Versions as for events ([`EVENT_SCHEMA_VERSION`]): 2 added the spec fields of event
/// schema 2 to the workflows a snapshot holds; 3 those of event schema 3 and each run's
/// usage counters; 4 those of event schema 4 and each run's lineage (agents); 5 the
/// cluster (worker nodes, remote placements); 6 the task spec's `secret_env` (event schema 6);
/// 7 the spec fields of event schema 7 and the breakers' and hook calls' states; 8 the spec
/// fields of event schema 8 (`scheduling`, `origin`) and the swarm expansions.
pub const SNAPSHOT_SCHEMA_VERSION: u16 = 8;
/// Envelope header length in bytes.
pub const HEADER_LEN: usize = 7;
/// Largest payload the decoder will allocate for (1 GiB): a corrupt length prefix cannot
/// make it allocate without bound even if the checksum happened to match.
const DECODE_LIMIT: usize = 1 << 30;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn decode_config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DECODE_LIMIT>,
> {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// What kind of record failed, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// An event in the `events` column family.
    Event,
    /// A snapshot in the `snapshots` column family.
    Snapshot,
    /// A rollup bucket in the `rollups` column family (its "sequence number" in errors is
    /// the bucket's minute).
    Rollup,
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordKind::Event => "event",
            RecordKind::Snapshot => "snapshot",
            RecordKind::Rollup => "rollup bucket",
        })
    }
}

/// A record that cannot be read. Replay stops at the first one; the caller should report it
/// (the journal is damaged or was written by a newer troupe) and not retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Fewer bytes than the envelope header.
    #[error("{kind} {seq}: record is {len} bytes, shorter than the {HEADER_LEN}-byte envelope")]
    Truncated {
        /// Event or snapshot.
        kind: RecordKind,
        /// Sequence number of the record.
        seq: Seq,
        /// Bytes present.
        len: usize,
    },
    /// The envelope's format byte is not one this troupe reads.
    #[error("{kind} {seq}: envelope format {found} is not supported (this troupe reads format {FORMAT_VERSION}); was it written by a newer troupe?")]
    UnknownFormat {
        /// Event or snapshot.
        kind: RecordKind,
        /// Sequence number of the record.
        seq: Seq,
        /// The format byte found.
        found: u8,
    },
    /// The payload schema is newer than this troupe understands.
    #[error(
        "{kind} {seq}: schema version {found} is newer than this troupe understands ({supported})"
    )]
    UnknownSchema {
        /// Event or snapshot.
        kind: RecordKind,
        /// Sequence number of the record.
        seq: Seq,
        /// Schema version found.
        found: u16,
        /// Highest schema version this build reads.
        supported: u16,
    },
    /// The stored checksum does not match the bytes: the record is corrupt.
    #[error("{kind} {seq}: checksum mismatch (stored {stored:08x}, computed {computed:08x}); the record is corrupt")]
    Checksum {
        /// Event or snapshot.
        kind: RecordKind,
        /// Sequence number of the record.
        seq: Seq,
        /// CRC32C in the envelope.
        stored: u32,
        /// CRC32C of the bytes read.
        computed: u32,
    },
    /// The checksum matched but the payload is not a valid encoding.
    #[error("{kind} {seq}: payload does not decode: {message}")]
    Decode {
        /// Event or snapshot.
        kind: RecordKind,
        /// Sequence number of the record.
        seq: Seq,
        /// bincode's (or the spec rebuild's) explanation.
        message: String,
    },
    /// The value could not be encoded (only possible for values serde cannot represent).
    #[error("cannot encode {kind}: {message}")]
    Encode {
        /// Event or snapshot.
        kind: RecordKind,
        /// bincode's explanation.
        message: String,
    },
}

fn checksum(seq: Seq, header: &[u8], payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&seq.to_be_bytes());
    let crc = crc32c::crc32c_append(crc, header);
    crc32c::crc32c_append(crc, payload)
}

fn encode_into<T: Serialize>(
    kind: RecordKind,
    schema: u16,
    seq: Seq,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let start = out.len();
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&schema.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    bincode::serde::encode_into_std_write(value, out, config()).map_err(|e| {
        CodecError::Encode {
            kind,
            message: e.to_string(),
        }
    })?;
    let (head, payload) = out[start..].split_at(HEADER_LEN);
    let crc = checksum(seq, &head[..3], payload);
    out[start + 3..start + HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn decode<T: DeserializeOwned>(
    kind: RecordKind,
    supported: u16,
    seq: Seq,
    bytes: &[u8],
) -> Result<T, CodecError> {
    if bytes.len() < HEADER_LEN {
        return Err(CodecError::Truncated {
            kind,
            seq,
            len: bytes.len(),
        });
    }
    let (head, payload) = bytes.split_at(HEADER_LEN);
    let stored = u32::from_le_bytes(head[3..7].try_into().expect("4 bytes"));
    let computed = checksum(seq, &head[..3], payload);
    if stored != computed {
        return Err(CodecError::Checksum {
            kind,
            seq,
            stored,
            computed,
        });
    }
    if head[0] != FORMAT_VERSION {
        return Err(CodecError::UnknownFormat {
            kind,
            seq,
            found: head[0],
        });
    }
    let schema = u16::from_le_bytes([head[1], head[2]]);
    if schema > supported || schema == 0 {
        return Err(CodecError::UnknownSchema {
            kind,
            seq,
            found: schema,
            supported,
        });
    }
    // The workflows inside events and snapshots read the spec layout of `schema`.
    let decoded = crate::model::spec::with_decoding_schema(schema, || {
        bincode::serde::decode_from_slice::<T, _>(payload, decode_config())
    });
    let (value, used) = decoded.map_err(|e| CodecError::Decode {
        kind,
        seq,
        message: e.to_string(),
    })?;
    if used != payload.len() {
        return Err(CodecError::Decode {
            kind,
            seq,
            message: format!("{} bytes left over after the payload", payload.len() - used),
        });
    }
    Ok(value)
}

/// Appends the envelope of event `seq` to `out` (which may already hold other bytes; the
/// caller reuses one buffer per batch).
pub fn encode_event_into(
    seq: Seq,
    record: &EventRecord,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    encode_into(RecordKind::Event, EVENT_SCHEMA_VERSION, seq, record, out)
}

/// The envelope of event `seq` as a new vector.
pub fn encode_event(seq: Seq, record: &EventRecord) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(128);
    encode_event_into(seq, record, &mut out)?;
    Ok(out)
}

/// Decodes the envelope stored for event `seq`.
pub fn decode_event(seq: Seq, bytes: &[u8]) -> Result<EventRecord, CodecError> {
    decode(RecordKind::Event, EVENT_SCHEMA_VERSION, seq, bytes)
}

/// The envelope of a snapshot of `state` (taken at `state.last_seq()`).
pub fn encode_snapshot(state: &State) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    encode_into(
        RecordKind::Snapshot,
        SNAPSHOT_SCHEMA_VERSION,
        state.last_seq(),
        state,
        &mut out,
    )?;
    Ok(out)
}

/// Decodes the snapshot stored at `seq`.
pub fn decode_snapshot(seq: Seq, bytes: &[u8]) -> Result<State, CodecError> {
    let state: State = decode(RecordKind::Snapshot, SNAPSHOT_SCHEMA_VERSION, seq, bytes)?;
    if state.last_seq() != seq {
        return Err(CodecError::Decode {
            kind: RecordKind::Snapshot,
            seq,
            message: format!("snapshot says it was taken at {}", state.last_seq()),
        });
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Event, Timestamp};

    fn record() -> EventRecord {
        EventRecord {
            time: Timestamp(1_700_000_000_000),
            event: Event::NodeHalted { kill: true },
        }
    }

    #[test]
    fn round_trip_and_header_layout() {
        let bytes = encode_event(7, &record()).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(
            u16::from_le_bytes([bytes[1], bytes[2]]),
            EVENT_SCHEMA_VERSION
        );
        assert_eq!(decode_event(7, &bytes).unwrap(), record());
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let bytes = encode_event(7, &record()).unwrap();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                let err = decode_event(7, &bad).unwrap_err();
                assert!(
                    matches!(err, CodecError::Checksum { seq: 7, .. }),
                    "byte {i} bit {bit}: {err}"
                );
                assert!(err.to_string().starts_with("event 7: checksum mismatch"));
            }
        }
    }

    #[test]
    fn wrong_key_and_short_records_fail() {
        let bytes = encode_event(7, &record()).unwrap();
        assert!(matches!(
            decode_event(8, &bytes),
            Err(CodecError::Checksum { seq: 8, .. })
        ));
        assert!(matches!(
            decode_event(7, &bytes[..3]),
            Err(CodecError::Truncated { len: 3, .. })
        ));
    }

    #[test]
    fn newer_format_or_schema_is_refused_by_name() {
        let mut bytes = encode_event(1, &record()).unwrap();
        bytes[1] = 9; // schema 9
        let (head, payload) = bytes.split_at(HEADER_LEN);
        let crc = checksum(1, &head[..3], payload);
        bytes[3..7].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode_event(1, &bytes),
            Err(CodecError::UnknownSchema { found: 9, .. })
        ));
    }
}

/// A control-protocol message that cannot be decoded (see [`decode_message`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable message: {0}")]
pub struct MessageError(pub String);

/// Encodes a control-protocol message (a frame body; the length prefix is the caller's).
/// Same bincode configuration as journal records, no envelope: the protocol version is
/// agreed once per connection by the handshake.
pub fn encode_message<T: Serialize>(message: &T) -> Result<Vec<u8>, MessageError> {
    bincode::serde::encode_to_vec(message, config()).map_err(|e| MessageError(e.to_string()))
}

/// Decodes a frame body written by [`encode_message`]. Trailing bytes are an error: a frame
/// holds exactly one message.
pub fn decode_message<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, MessageError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, decode_config())
        .map_err(|e| MessageError(e.to_string()))?;
    if used != bytes.len() {
        return Err(MessageError(format!(
            "{} trailing bytes after the message",
            bytes.len() - used
        )));
    }
    Ok(value)
}

/// Layout version of a stored rollup bucket (the first byte of its value).
/// 2 added usage counters ([`crate::model::rollup::Bucket::usage`]); layout 1 still
/// decodes (with none).
pub const ROLLUP_VERSION: u8 = 2;

/// The stored form of a rollup bucket: [`ROLLUP_VERSION`], then the bincode payload. No CRC:
/// a bucket is derived data, and an undecodable one is reported, never silently zeroed.
pub fn encode_rollup(bucket: &crate::model::rollup::Bucket) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![ROLLUP_VERSION];
    bincode::serde::encode_into_std_write(bucket, &mut out, config()).map_err(|e| {
        CodecError::Encode {
            kind: RecordKind::Rollup,
            message: e.to_string(),
        }
    })?;
    Ok(out)
}

/// Decodes a bucket written by [`encode_rollup`]; `minute` names it in errors.
pub fn decode_rollup(
    minute: u64,
    bytes: &[u8],
) -> Result<crate::model::rollup::Bucket, CodecError> {
    let bad = |message: String| CodecError::Decode {
        kind: RecordKind::Rollup,
        seq: minute,
        message,
    };
    match bytes.first() {
        Some(&ROLLUP_VERSION) => {
            let (b, _) = bincode::serde::decode_from_slice(&bytes[1..], decode_config())
                .map_err(|e| bad(e.to_string()))?;
            Ok(b)
        }
        Some(1) => {
            let (b, _): (crate::model::rollup::BucketV1, _) =
                bincode::serde::decode_from_slice(&bytes[1..], decode_config())
                    .map_err(|e| bad(e.to_string()))?;
            Ok(b.into())
        }
        Some(v) => Err(bad(format!("unknown rollup version {v}"))),
        None => Err(bad("empty value".into())),
    }
}
