//! Value checks shared by every source of a setting (the file, `TROUPE_*` variables, flags).

use std::net::SocketAddr;

/// Parses an `http_addr` value: `HOST:PORT` with an IP host, or `off`.
pub fn parse_http_addr(v: &str) -> Result<Option<SocketAddr>, String> {
    if v == "off" {
        return Ok(None);
    }
    v.parse::<SocketAddr>().map(Some).map_err(|_| {
        format!("`{v}` is not an address: give IP:PORT (e.g. 127.0.0.1:9479) or \"off\"")
    })
}

/// Checks a worker count from any source (file, `TROUPE_WORKERS`, `--workers`): 1 to
/// [`super::MAX_WORKERS`].
pub fn check_workers(n: i64) -> Result<u32, String> {
    let max = super::MAX_WORKERS;
    if (1..=i64::from(max)).contains(&n) {
        Ok(n as u32)
    } else {
        Err(format!("workers must be between 1 and {max} (got {n})"))
    }
}
