//! `[cluster]`: the coordinator's side of remote worker nodes (docs/cluster.md).
//!
//! ```toml
//! [cluster]
//! listen = "127.0.0.1:9480"          # off unless set
//! cookie_file = "/etc/troupe/cookie"  # mode 0600; the same file on every machine
//! join_tokens_file = "/etc/troupe/tokens"  # one token per line
//! heartbeat = "2s"                   # a node silent for 2x this is lost
//! run_local = true                   # the coordinator's own workers take tasks too
//! tls_cert = "coordinator.pem"       # with tls_key and tls_ca: mutual TLS
//! tls_key = "coordinator.key"
//! tls_ca = "ca.pem"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::parse::Spans;
use super::ConfigError;

/// Default heartbeat period: a worker is lost after twice this (4 s) without one.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);

/// The serde shape of `[cluster]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) cookie_file: Option<Spanned<String>>,
    pub(super) join_tokens_file: Option<Spanned<String>>,
    pub(super) heartbeat: Option<Spanned<String>>,
    pub(super) run_local: Option<bool>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
    pub(super) tls_ca: Option<Spanned<String>>,
}

/// The three files of mutual TLS (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// This side's certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The private CA both sides' certificates are checked against.
    pub ca: PathBuf,
}

/// `[cluster]` as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Where worker nodes connect.
    pub listen: SocketAddr,
    /// The cluster cookie's file (mode 0600): the handshake proves both sides know it.
    pub cookie_file: PathBuf,
    /// Join tokens, one per line: a worker must show one.
    pub join_tokens_file: PathBuf,
    /// Heartbeat period (default [`DEFAULT_HEARTBEAT`]); the lease is twice this.
    pub heartbeat: Duration,
    /// Whether the coordinator's own workers (the node `local`) take tasks (default true).
    pub run_local: bool,
    /// Mutual TLS, if set.
    pub tls: Option<TlsFiles>,
    /// Listening on a non-loopback address without TLS was allowed (`--insecure`).
    pub insecure: bool,
}

impl ClusterConfig {
    /// The lease: a node not heard from for this long is lost (2 × heartbeat).
    pub fn lease(&self) -> Duration {
        self.heartbeat * 2
    }

    /// Refuses what must not start: listening beyond loopback in the clear without
    /// `insecure`.
    pub fn check_exposure(&self) -> Result<(), String> {
        if self.tls.is_none() && !self.listen.ip().is_loopback() && !self.insecure {
            return Err(format!(
                "[cluster] listen = \"{}\" is not a loopback address and no TLS is set: \
                 set tls_cert, tls_key and tls_ca, or start with --insecure to accept \
                 cookie-only authentication in the clear",
                self.listen
            ));
        }
        Ok(())
    }
}

/// Reads a secret file: refused if others may read it (mode & 0o077), if it is empty, or
/// if it cannot be read. Returns the text, trailing whitespace trimmed.
pub fn read_secret(path: &Path, what: &str) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{what} {} has mode {mode:o}: others may read it; chmod 600 it",
            path.display()
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let text = text.trim_end().to_owned();
    if text.trim().is_empty() {
        return Err(format!("{what} {} is empty", path.display()));
    }
    Ok(text)
}

/// The join tokens of a tokens file: one per line, blank lines and `#` comments skipped.
pub fn read_tokens(path: &Path) -> Result<Vec<String>, String> {
    let text = read_secret(path, "join_tokens_file")?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if tokens.is_empty() {
        return Err(format!(
            "join_tokens_file {} holds no token",
            path.display()
        ));
    }
    Ok(tokens)
}

/// Checks `[cluster]`; relative paths are taken from `base` (the config file's folder).
pub(super) fn check(
    p: &Spans<'_>,
    raw: &Spanned<RawCluster>,
    base: &Path,
) -> Result<Option<ClusterConfig>, ConfigError> {
    let c = raw.get_ref();
    let Some(listen) = &c.listen else {
        return Err(p.at(
            Some(raw.span()),
            "[cluster] needs `listen = \"ADDR:PORT\"` (worker nodes connect there)",
        ));
    };
    let addr: SocketAddr = listen.get_ref().parse().map_err(|_| {
        p.at(
            Some(listen.span()),
            &format!(
                "[cluster] listen: `{}` is not an address: give IP:PORT (e.g. 0.0.0.0:9480)",
                listen.get_ref()
            ),
        )
    })?;
    let path = |v: &Option<Spanned<String>>, field: &str| -> Result<Option<PathBuf>, ConfigError> {
        match v {
            None => Ok(None),
            Some(s) if s.get_ref().trim().is_empty() => Err(p.at(
                Some(s.span()),
                &format!("[cluster] {field} is empty: give a file path"),
            )),
            Some(s) => Ok(Some(base.join(s.get_ref()))),
        }
    };
    let need = |v: Option<PathBuf>, field: &str| -> Result<PathBuf, ConfigError> {
        v.ok_or_else(|| {
            p.at(
                Some(raw.span()),
                &format!("[cluster] needs `{field}` (a file of mode 0600)"),
            )
        })
    };
    let cookie_file = need(path(&c.cookie_file, "cookie_file")?, "cookie_file")?;
    let join_tokens_file = need(
        path(&c.join_tokens_file, "join_tokens_file")?,
        "join_tokens_file",
    )?;
    let heartbeat = match &c.heartbeat {
        Some(h) => p.duration(h, "[cluster] heartbeat")?,
        None => DEFAULT_HEARTBEAT,
    };
    let tls = match (
        path(&c.tls_cert, "tls_cert")?,
        path(&c.tls_key, "tls_key")?,
        path(&c.tls_ca, "tls_ca")?,
    ) {
        (None, None, None) => None,
        (Some(cert), Some(key), Some(ca)) => Some(TlsFiles { cert, key, ca }),
        _ => {
            return Err(p.at(
                Some(raw.span()),
                "[cluster] TLS needs all three of tls_cert, tls_key and tls_ca",
            ))
        }
    };
    Ok(Some(ClusterConfig {
        listen: addr,
        cookie_file,
        join_tokens_file,
        heartbeat,
        run_local: c.run_local.unwrap_or(true),
        tls,
        insecure: false,
    }))
}
