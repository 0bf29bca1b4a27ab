//! Identifiers: runs are ULIDs, tasks are the ids users write in workflow files.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use super::quote::quoted;

/// Identifies one run of a workflow.
///
/// A [ULID](https://github.com/ulid/spec): 48 bits of milliseconds since the Unix epoch followed
/// by 80 random bits, so ids sort by submission time and two nodes never mint the same one.
/// Printed as the 26-character Crockford base32 form (`01JD3X...`); stored as a `u128` (16
/// bytes) in the journal. The model never mints ids (it reads no clock and draws no random
/// numbers); the node does, with [`RunId::from_ulid`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(u128);

impl RunId {
    /// Wraps a ULID minted by the caller (the node uses a monotonic generator).
    pub fn from_ulid(ulid: ulid::Ulid) -> Self {
        RunId(ulid.0)
    }

    /// The raw 128-bit value; its big-endian bytes sort like the id.
    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// Rebuilds an id from [`RunId::as_u128`].
    pub fn from_u128(value: u128) -> Self {
        RunId(value)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&ulid::Ulid(self.0), f)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({self})")
    }
}

/// A run id that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} is not a run id (expected a 26-character ULID such as 01JD3X5Q8R2N6V7W0Y4Z9A1B2C, whose first character is 0-7)",
    quoted(.input)
)]
pub struct ParseRunIdError {
    /// The text that was given, so the message can quote it.
    pub input: String,
}

impl FromStr for RunId {
    type Err = ParseRunIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // 26 base-32 digits carry 130 bits; a ULID has 128, so its first digit is 0-7. The
        // ulid crate drops the extra bits, so `81M8...` would name the run `01M8...`.
        if !s
            .as_bytes()
            .first()
            .is_some_and(|c| (b'0'..=b'7').contains(c))
        {
            return Err(ParseRunIdError {
                input: s.to_owned(),
            });
        }
        ulid::Ulid::from_string(s)
            .map(RunId::from_ulid)
            .map_err(|_| ParseRunIdError {
                input: s.to_owned(),
            })
    }
}

/// Longest task id accepted, in bytes. Ids appear in file names (`logs/RUN/TASK/...`) and in
/// journal keys, so they are kept well under the usual 255-byte file name limit.
pub const MAX_TASK_ID_LEN: usize = 128;

/// Identifies a task within its workflow: `[A-Za-z0-9_.-]+`, at most [`MAX_TASK_ID_LEN`] bytes,
/// and neither `.` nor `..` (ids become directory names under `logs/RUN/`). An instance of a
/// mapped task (dynamic fan-out, minted by the node) is `BASE[INDEX]`, BASE following those
/// rules.
///
/// Ids of up to 24 bytes are stored inline (no heap allocation), which is most of them: every
/// event names a task, so decoding and comparing ids is on the replay hot path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TaskId(compact_str::CompactString);

/// Why a string is not a valid [`TaskId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTaskId {
    /// The id is the empty string.
    #[error("task id is empty")]
    Empty,
    /// The id is longer than [`MAX_TASK_ID_LEN`].
    #[error("task id {} is longer than {MAX_TASK_ID_LEN} bytes", quoted(.0))]
    TooLong(String),
    /// The id holds a character outside `[A-Za-z0-9_.-]`.
    #[error(
        "task id {} contains {ch:?}; ids may only use letters, digits, `_`, `.` and `-`",
        quoted(.id)
    )]
    BadCharacter {
        /// The whole id as given.
        id: String,
        /// The first offending character.
        ch: char,
    },
    /// The id is `.` or `..`, which would escape the run's log folder.
    #[error("task id {} is reserved (it names a directory)", quoted(.0))]
    Reserved(String),
}

impl TaskId {
    /// Validates `id` against the rules above.
    pub fn new(id: impl AsRef<str>) -> Result<Self, InvalidTaskId> {
        let id = id.as_ref();
        Self::check(id)?;
        Ok(TaskId(id.into()))
    }

    /// The id of instance `index` of mapped task `base` (dynamic fan-out): `BASE[INDEX]`.
    /// Only the node mints these; a workflow file cannot use `[` or `]` in its ids.
    pub fn instance(base: &TaskId, index: u32) -> TaskId {
        let mut id = compact_str::CompactString::from(base.as_str());
        id.push('[');
        id.push_str(&index.to_string());
        id.push(']');
        TaskId(id)
    }

    /// For an instance id `BASE[INDEX]`: the mapped task's id and the index.
    pub fn split_instance(&self) -> Option<(&str, u32)> {
        split_instance(self.as_str())
    }

    fn check(id: &str) -> Result<(), InvalidTaskId> {
        if let Some((base, _)) = split_instance(id) {
            return Self::check_plain(base);
        }
        Self::check_plain(id)
    }

    /// The rules for an id a workflow file may use (no instance suffix).
    pub fn check_plain(id: &str) -> Result<(), InvalidTaskId> {
        if id.is_empty() {
            return Err(InvalidTaskId::Empty);
        }
        if id.len() > MAX_TASK_ID_LEN {
            return Err(InvalidTaskId::TooLong(id.to_owned()));
        }
        if let Some(ch) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(InvalidTaskId::BadCharacter {
                id: id.to_owned(),
                ch,
            });
        }
        if id == "." || id == ".." {
            return Err(InvalidTaskId::Reserved(id.to_owned()));
        }
        Ok(())
    }

    /// The id as written in the workflow file.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = compact_str::CompactString::deserialize(deserializer)?;
        TaskId::check(&raw).map_err(serde::de::Error::custom)?;
        Ok(TaskId(raw))
    }
}

impl FromStr for TaskId {
    type Err = InvalidTaskId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskId::new(s)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({})", self.0)
    }
}

impl std::borrow::Borrow<str> for TaskId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// `BASE[INDEX]` → `(BASE, INDEX)` when INDEX is a decimal number without leading zeros.
fn split_instance(id: &str) -> Option<(&str, u32)> {
    let open = id.strip_suffix(']')?.rfind('[')?;
    let digits = &id[open + 1..id.len() - 1];
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((&id[..open], digits.parse().ok()?))
}

/// Position of a task in its workflow's `[[task]]` list (0-based). The model keys per-task
/// state by index, which is stable for the life of a run because a run's spec never changes.
pub type TaskIndex = u32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_id_rules() {
        assert!(TaskId::new("build-1.2_x").is_ok());
        assert_eq!(TaskId::new(""), Err(InvalidTaskId::Empty));
        assert!(matches!(
            TaskId::new("a b"),
            Err(InvalidTaskId::BadCharacter { ch: ' ', .. })
        ));
        assert!(matches!(
            TaskId::new("a/b"),
            Err(InvalidTaskId::BadCharacter { ch: '/', .. })
        ));
        assert!(matches!(TaskId::new(".."), Err(InvalidTaskId::Reserved(_))));
        assert!(matches!(
            TaskId::new("x".repeat(129)),
            Err(InvalidTaskId::TooLong(_))
        ));
        assert!(TaskId::new("x".repeat(128)).is_ok());
    }

    #[test]
    fn instance_ids() {
        let base = TaskId::new("work").unwrap();
        let i = TaskId::instance(&base, 42);
        assert_eq!(i.as_str(), "work[42]");
        assert_eq!(i.split_instance(), Some(("work", 42)));
        assert_eq!(TaskId::new("work[42]").unwrap(), i);
        for bad in ["work[]", "work[01]", "work[x]", "[3]", "a[1]b", "a[-1]"] {
            assert!(TaskId::new(bad).is_err(), "{bad} accepted");
        }
        assert!(TaskId::check_plain("work[1]").is_err());
    }

    #[test]
    fn run_id_round_trips_through_text_and_sorts_by_time() {
        let early = RunId::from_ulid(ulid::Ulid::from_parts(1_000, 5));
        let late = RunId::from_ulid(ulid::Ulid::from_parts(2_000, 1));
        assert!(early < late);
        let text = early.to_string();
        assert_eq!(text.len(), 26);
        assert_eq!(text.parse::<RunId>().unwrap(), early);
        assert!("nope".parse::<RunId>().is_err());
    }

    #[test]
    fn run_id_whose_first_digit_overflows_128_bits_is_refused() {
        let id = RunId::from_ulid(ulid::Ulid::from_parts(1_700_000_000_000, 42)).to_string();
        assert!(id.starts_with('0'));
        for first in ['8', '9', 'G', 'Z', 'z'] {
            let wrapped = format!("{first}{}", &id[1..]);
            assert!(wrapped.parse::<RunId>().is_err(), "{wrapped} was accepted");
        }
        let top = format!("7{}", "Z".repeat(25));
        assert_eq!(top.parse::<RunId>().unwrap().to_string(), top);
        assert!("".parse::<RunId>().is_err());
    }
}
