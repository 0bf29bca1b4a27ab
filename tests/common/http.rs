//! Helpers for tests of the web UI and HTTP API: a node with a tokens file, and a plain
//! HTTP/1.1 client over a TCP connection (no client library: what goes on the wire is what
//! the test wrote).

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use super::NodeProc;

/// The token of `alice` in [`start_with_tokens`]'s tokens file.
pub const TOKEN: &str = "alice-0123456789abcdef";

/// Starts a node whose troupe.toml sets `[http] tokens_file` (`alice TOKEN`, mode 0600).
pub fn start_with_tokens(dir: &Path, extra: &[&str]) -> (NodeProc, String) {
    use std::os::unix::fs::PermissionsExt;
    let tokens = dir.join("http-tokens");
    std::fs::write(&tokens, format!("# name token\nalice {TOKEN}\n")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        dir.join("troupe.toml"),
        "[http]\ntokens_file = \"http-tokens\"\n",
    )
    .unwrap();
    let node = NodeProc::start(dir, extra);
    let addr = super::http_addr(dir);
    (node, addr)
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Sends one request (`Connection: close`) and reads the whole answer.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the node's HTTP port");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse(&raw)
}

/// Parses a whole HTTP/1.1 answer.
pub fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = end + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
}

/// `GET` with no headers.
pub fn get(addr: &str, path: &str) -> Reply {
    request(addr, "GET", path, &[], b"")
}

/// `Authorization: Bearer TOKEN`.
pub fn bearer() -> (&'static str, String) {
    ("Authorization", format!("Bearer {TOKEN}"))
}

/// `POST` with the bearer token and a JSON (or empty) body.
pub fn post_as_alice(addr: &str, path: &str, body: &str) -> Reply {
    let (k, v) = bearer();
    request(
        addr,
        "POST",
        path,
        &[(k, &v), ("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

/// Submits `toml` through the API as alice; returns the run id.
pub fn submit(addr: &str, toml: &str) -> String {
    let (k, v) = bearer();
    let r = request(
        addr,
        "POST",
        "/api/runs",
        &[(k, &v), ("Content-Type", "text/plain")],
        toml.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["run"].as_str().unwrap().to_owned()
}

/// Logs in with the token; returns the session cookie (`troupe_session=...`).
pub fn login(addr: &str) -> String {
    let body = format!("token={TOKEN}&next=%2Fruns");
    let r = request(
        addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = r.header("set-cookie").expect("a session cookie").to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

/// The CSRF token a page shows a session (`<meta name="csrf-token" content="...">`).
pub fn csrf_of(addr: &str, cookie: &str) -> String {
    let r = request(addr, "GET", "/login", &[("Cookie", cookie)], b"");
    let page = r.text();
    let at = page
        .find("name=\"csrf-token\" content=\"")
        .unwrap_or_else(|| panic!("no csrf meta in {page}"));
    let rest = &page[at + "name=\"csrf-token\" content=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}
