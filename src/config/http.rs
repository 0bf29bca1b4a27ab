//! The `[http]` section: who may use the web UI and the HTTP API served on `http_addr`
//! ([`crate::web`]).
//!
//! ```toml
//! [http]
//! tokens_file = "http-tokens"   # lines `NAME TOKEN`, mode 0600; relative to this file
//! ```
//!
//! Without a tokens file every action (submit, cancel, retry, approve, reject) is refused;
//! reads are open while `http_addr` is a loopback address. A node whose `http_addr` is not a
//! loopback address refuses to start without a tokens file, unless started with
//! `--insecure` ([`HttpConfig::check_exposure`]).

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::file::NodeFile;
use super::parse::Spans;
use super::ConfigError;

/// The serde shape of `[http]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    tokens_file: Option<Spanned<String>>,
}

/// Who may read and act over HTTP.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpConfig {
    /// `[http] tokens_file`: the API and login tokens, one `NAME TOKEN` a line (mode 0600).
    /// `None`: no token exists, so every action is refused.
    pub tokens_file: Option<PathBuf>,
    /// `--insecure`: a non-loopback `http_addr` may serve without tokens (reads and the
    /// metrics open to anyone who can reach it; actions still need a token).
    pub insecure: bool,
}

impl HttpConfig {
    /// Whether serving on `addr` with this config is allowed: a non-loopback address needs a
    /// tokens file (reads then need a token too) or `--insecure`. The error says which.
    pub fn check_exposure(&self, addr: std::net::SocketAddr) -> Result<(), String> {
        if addr.ip().is_loopback() || self.tokens_file.is_some() || self.insecure {
            return Ok(());
        }
        Err(format!(
            "http_addr {addr} is not a loopback address, and without [http] tokens_file anyone \
             who reaches it could read every run, task and log: set [http] tokens_file in \
             troupe.toml, bind 127.0.0.1, or start with --insecure to serve it open"
        ))
    }
}

/// Checks `[http]` into `out`; a relative `tokens_file` is taken from `base` (the config
/// file's folder). The file itself is read when the node starts.
pub(super) fn check(
    p: &Spans,
    raw: &RawHttp,
    base: &std::path::Path,
    out: &mut NodeFile,
) -> Result<(), ConfigError> {
    if let Some(f) = &raw.tokens_file {
        if f.get_ref().trim().is_empty() {
            return Err(p.at(Some(f.span()), "http.tokens_file: the path is empty"));
        }
        out.http_tokens_file = Some(base.join(f.get_ref()));
    }
    Ok(())
}
