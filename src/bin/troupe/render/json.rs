//! JSON output: the shapes live in the library ([`troupe::messages::control::json`]), shared
//! with the HTTP API; this module adds printing.

use std::io::Write;

pub(crate) use troupe::messages::control::json::*;

/// Prints `v` on one line of stdout; a closed pipe is ignored.
pub(crate) fn print_json(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
}
