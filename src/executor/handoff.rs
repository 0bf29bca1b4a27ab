//! Reading what a process attempt hands back: its output file (`TROUPE_OUTPUT`) and its
//! usage file (`TROUPE_USAGE`), checked before anything is journaled.

use std::io::ErrorKind;
use std::path::Path;

use serde_json::Value;

use crate::model::template::kind;
use crate::model::Counters;

/// Most counters one attempt may report (each becomes a label value of
/// `troupe_task_usage_total`, so their number is kept small).
pub const MAX_COUNTERS: usize = 32;

/// Largest `TROUPE_USAGE` file read, bytes (64 KiB: 32 counters need a few hundred).
pub const MAX_USAGE_BYTES: u64 = 64 * 1024;

/// Opens the handoff file `name` at `path` for reading, if there is one: never through a
/// symbolic link, never blocking (a FIFO would hold the reader forever), and only if it is a
/// regular file (`/dev/zero` would never end). The file and its size.
fn open_regular(path: &Path, name: &str) -> Result<Option<(std::fs::File, u64)>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(format!(
                "{name} is a symbolic link; write a regular file there"
            ))
        }
        Err(e) => return Err(format!("cannot read {name} ({}): {e}", path.display())),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {name} ({}): {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{name} is not a regular file"));
    }
    Ok(Some((file, meta.len())))
}

/// Reads at most `max` bytes of an open handoff file; `Err(n)` if it holds more.
fn read_capped(file: std::fs::File, max: u64) -> std::io::Result<Result<Vec<u8>, u64>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    Ok(if bytes.len() as u64 > max {
        Err(bytes.len() as u64)
    } else {
        Ok(bytes)
    })
}

/// Reads the output file at `path`: `Ok(None)` if there is none (the output is `null`),
/// else the value as compact JSON. The error says why it is refused: larger than `max`
/// bytes (its size is checked before reading, and no more than `max` + 1 bytes are read),
/// not one JSON value (with the parser's line and column), or not a regular file.
pub fn read_output(path: &Path, max: u64) -> Result<Option<String>, String> {
    let Some((file, len)) = open_regular(path, "TROUPE_OUTPUT")? else {
        return Ok(None);
    };
    let too_large =
        |len: u64| format!("the output is {len} bytes, more than max_output ({max} bytes)");
    if len > max {
        return Err(too_large(len));
    }
    let bytes = read_capped(file, max)
        .map_err(|e| format!("cannot read TROUPE_OUTPUT ({}): {e}", path.display()))?
        .map_err(|n| too_large(len.max(n)))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the output is not one JSON value: {e}"))?;
    Ok(Some(value.to_string()))
}

/// Reads the usage file at `path`: empty if there is none. The error names what is wrong: not
/// a JSON object, a counter that is not a finite number, a bad counter name, too many.
pub fn read_usage(path: &Path) -> Result<Counters, String> {
    let Some((file, _)) = open_regular(path, "TROUPE_USAGE")? else {
        return Ok(Counters::new());
    };
    let bytes = read_capped(file, MAX_USAGE_BYTES)
        .map_err(|e| format!("cannot read TROUPE_USAGE ({}): {e}", path.display()))?
        .map_err(|_| format!("TROUPE_USAGE is larger than {MAX_USAGE_BYTES} bytes"))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("TROUPE_USAGE is not JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err(format!(
            "TROUPE_USAGE must be a JSON object of numbers, found {}",
            kind(&value)
        ));
    };
    if map.len() > MAX_COUNTERS {
        return Err(format!(
            "TROUPE_USAGE has {} counters, more than the limit of {MAX_COUNTERS}",
            map.len()
        ));
    }
    let mut counters = Counters::new();
    for (name, v) in map {
        let ok_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok_name {
            return Err(format!(
                "TROUPE_USAGE counter name {name:?} must be 1-64 letters, digits, `_`, `.` or `-`"
            ));
        }
        match v.as_f64().filter(|f| f.is_finite()) {
            // Usage only grows: a negative figure would refund every ancestor's budget.
            Some(f) if f < 0.0 => {
                return Err(format!(
                    "TROUPE_USAGE counter `{name}` is {f}; usage is 0 or more"
                ))
            }
            Some(f) => {
                counters.insert(name, f);
            }
            None => {
                return Err(format!(
                    "TROUPE_USAGE counter `{name}` must be a number, found {}",
                    kind(&v)
                ))
            }
        }
    }
    Ok(counters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        assert_eq!(read_output(&p, 10).unwrap(), None);
        std::fs::write(&p, "{ \"a\" : [1, 2] }\n").unwrap();
        assert_eq!(
            read_output(&p, 100).unwrap().as_deref(),
            Some(r#"{"a":[1,2]}"#)
        );
        // Exactly max_output is fine; one byte over is not.
        std::fs::write(&p, "\"12345678\"").unwrap();
        assert!(read_output(&p, 10).is_ok());
        let e = read_output(&p, 9).unwrap_err();
        assert!(
            e.contains("10 bytes, more than max_output (9 bytes)"),
            "{e}"
        );
        std::fs::write(&p, "{\"a\": 1,}").unwrap();
        let e = read_output(&p, 100).unwrap_err();
        assert!(
            e.contains("not one JSON value") && e.contains("line 1 column 9"),
            "{e}"
        );
        std::fs::write(&p, "1 2").unwrap();
        assert!(read_output(&p, 100)
            .unwrap_err()
            .contains("not one JSON value"));
    }

    #[test]
    fn usage_file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("usage.json");
        assert!(read_usage(&p).unwrap().is_empty());
        std::fs::write(&p, r#"{"tokens": 120, "cost_usd": 0.25}"#).unwrap();
        let c = read_usage(&p).unwrap();
        assert_eq!(c["tokens"], 120.0);
        assert_eq!(c["cost_usd"], 0.25);
        std::fs::write(&p, r#"{"tokens": "many"}"#).unwrap();
        let e = read_usage(&p).unwrap_err();
        assert!(
            e.contains("counter `tokens` must be a number, found a string"),
            "{e}"
        );
        std::fs::write(&p, "[1]").unwrap();
        assert!(read_usage(&p).unwrap_err().contains("found an array"));
        std::fs::write(&p, r#"{"a b": 1}"#).unwrap();
        assert!(read_usage(&p).unwrap_err().contains("counter name"));
        // A negative figure would refund every ancestor's budget.
        std::fs::write(&p, r#"{"tokens": -1000000}"#).unwrap();
        let e = read_usage(&p).unwrap_err();
        assert!(
            e.contains("`tokens` is -1000000; usage is 0 or more"),
            "{e}"
        );
    }

    #[test]
    fn links_fifos_and_devices_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        assert!(read_output(&p, 100).unwrap_err().contains("symbolic link"));
        std::fs::remove_file(&p).unwrap();
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(read_usage(&p).unwrap_err().contains("not a regular file"));
        assert!(read_output(&p, 100)
            .unwrap_err()
            .contains("not a regular file"));
    }
}
