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

/// Reads the output file at `path`: `Ok(None)` if there is none (the output is `null`),
/// else the value as compact JSON. The error says why it is refused: larger than `max`
/// bytes (checked on the file's size, before reading it), or not one JSON value (with the
/// parser's line and column).
pub fn read_output(path: &Path, max: u64) -> Result<Option<String>, String> {
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot read TROUPE_OUTPUT ({}): {e}",
                path.display()
            ))
        }
    };
    if len > max {
        return Err(format!(
            "the output is {len} bytes, more than max_output ({max} bytes)"
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read TROUPE_OUTPUT ({}): {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(format!(
            "the output is {} bytes, more than max_output ({max} bytes)",
            bytes.len()
        ));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the output is not one JSON value: {e}"))?;
    Ok(Some(value.to_string()))
}

/// Reads the usage file at `path`: empty if there is none. The error names what is wrong: not
/// a JSON object, a counter that is not a finite number, a bad counter name, too many.
pub fn read_usage(path: &Path) -> Result<Counters, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Counters::new()),
        Err(e) => {
            return Err(format!(
                "cannot read TROUPE_USAGE ({}): {e}",
                path.display()
            ))
        }
    };
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
    }
}
