//! Who may read and act over HTTP.
//!
//! - **Tokens.** `[http] tokens_file` holds one `NAME TOKEN` a line (blank lines and `#`
//!   comments skipped; mode 0600, like the cluster's secrets). API clients send
//!   `Authorization: Bearer TOKEN`; what they do is journaled as by NAME. Only SHA-256
//!   digests of the tokens are kept in memory.
//! - **Sessions.** A browser logs in once at `/login` with a token and gets the cookie
//!   `troupe_session` (HttpOnly, SameSite=Strict, Path=/; 12 h, kept in memory, so a restart
//!   logs everyone out). Each session has a CSRF token that every form carries (`csrf`) and
//!   JavaScript sends (`X-CSRF-Token`): the synchronizer-token pattern of OWASP's CSRF
//!   prevention cheat sheet, beside SameSite=Strict.
//! - **The guard** ([`guard`]): a wrong bearer token is 403 at once; an action (any method
//!   but GET/HEAD) without credentials is 401, and one through a session without the right
//!   CSRF token is 403. Reads are open while `http_addr` is a loopback address; on any other
//!   address they need credentials too (`/metrics`, `/healthz`, `/readyz`, `/login` and
//!   `/assets/` stay open).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use sha2::{Digest, Sha256};

use super::{Web, WebError};
use crate::config::HttpConfig;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "troupe_session";

/// How long a session lasts after login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The header JavaScript sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Most bytes of a form body the guard reads to find its CSRF token.
const MAX_FORM_BYTES: usize = 1 << 20;

/// Tokens and sessions of one node.
pub struct Auth {
    /// (NAME, SHA-256 of TOKEN), in file order.
    tokens: Vec<(String, [u8; 32])>,
    /// Whether reads need credentials (a non-loopback `http_addr` with tokens).
    reads_need_token: bool,
    /// Session id → session.
    sessions: Mutex<HashMap<String, Session>>,
}

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session id (the cookie's value).
    id: String,
    /// The token's NAME: who acts.
    pub name: String,
    /// The CSRF token forms and scripts must send back.
    pub csrf: String,
    /// When the session ends.
    expires: Instant,
}

/// Who sent a request, as the guard found out; handlers take it from the request's
/// extensions (`Extension<Viewer>`).
#[derive(Debug, Clone, Default)]
pub enum Viewer {
    /// No credentials: may read (on loopback), may not act.
    #[default]
    Anonymous,
    /// `Authorization: Bearer TOKEN` of NAME.
    Token(String),
    /// A browser session.
    Session(Session),
}

impl Viewer {
    /// The NAME actions are journaled as, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            Viewer::Anonymous => None,
            Viewer::Token(n) => Some(n),
            Viewer::Session(s) => Some(&s.name),
        }
    }

    /// The CSRF token to put in forms (sessions only).
    pub fn csrf(&self) -> Option<&str> {
        match self {
            Viewer::Session(s) => Some(&s.csrf),
            _ => None,
        }
    }
}

impl Auth {
    /// Loads `[http]` for a node serving on `addr`: reads the tokens file (refused if others
    /// may read it, if empty, or if a line is not `NAME TOKEN`, naming `FILE:LINE`) and checks
    /// the exposure rule ([`HttpConfig::check_exposure`]).
    pub fn load(config: &HttpConfig, addr: std::net::SocketAddr) -> Result<Self, String> {
        config.check_exposure(addr)?;
        let tokens = match &config.tokens_file {
            Some(path) => read_tokens_file(path)?,
            None => Vec::new(),
        };
        Ok(Auth {
            reads_need_token: !addr.ip().is_loopback() && !tokens.is_empty(),
            tokens,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// The NAME of `token`, if it is one of the file's.
    pub fn name_of(&self, token: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.tokens
            .iter()
            .find(|(_, d)| *d == digest)
            .map(|(n, _)| n.as_str())
    }

    /// Whether any token exists (without one, every action is refused).
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Starts a session for `token`'s NAME; `None` if the token is unknown.
    pub fn login(&self, token: &str) -> Option<Session> {
        let name = self.name_of(token)?.to_owned();
        let session = Session {
            id: random_hex(),
            name,
            csrf: random_hex(),
            expires: Instant::now() + SESSION_TTL,
        };
        let mut sessions = self.sessions.lock().expect("not poisoned");
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(session.id.clone(), session.clone());
        Some(session)
    }

    /// The live session with cookie value `id`.
    fn session(&self, id: &str) -> Option<Session> {
        let sessions = self.sessions.lock().expect("not poisoned");
        sessions
            .get(id)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    /// Ends session `id`.
    fn logout(&self, id: &str) {
        self.sessions.lock().expect("not poisoned").remove(id);
    }
}

/// 32 random bytes as hex (session ids and CSRF tokens; `rand`'s thread RNG is a CSPRNG).
fn random_hex() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a tokens file: mode 0600, lines `NAME TOKEN`, names and tokens unique, tokens at
/// least 16 characters.
fn read_tokens_file(path: &Path) -> Result<Vec<(String, [u8; 32])>, String> {
    let text = crate::config::read_secret(path, "[http] tokens_file")?;
    let mut out: Vec<(String, [u8; 32])> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), i + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, token] = fields[..] else {
            return Err(format!(
                "{at}: expected `NAME TOKEN` (two fields), found {} field(s)",
                fields.len()
            ));
        };
        if token.len() < 16 {
            return Err(format!(
                "{at}: the token of {name:?} is {} characters; use at least 16 (e.g. `openssl rand -hex 32`)",
                token.len()
            ));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("{at}: the name {name:?} is given twice"));
        }
        if out.iter().any(|(_, d)| *d == digest) {
            return Err(format!("{at}: this token is already given to another name"));
        }
        out.push((name.to_owned(), digest));
    }
    if out.is_empty() {
        return Err(format!(
            "[http] tokens_file {} holds no `NAME TOKEN` line",
            path.display()
        ));
    }
    Ok(out)
}

/// Whether a request to `path` is answered as JSON (errors too).
pub fn wants_json(path: &str) -> bool {
    path.starts_with("/api/")
}

/// Paths open to anyone who reaches the server.
fn always_open(path: &str) -> bool {
    matches!(path, "/login" | "/metrics" | "/healthz" | "/readyz") || path.starts_with("/assets/")
}

/// The bearer token of a request, if it sends one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The session cookie's value, if the request sends one.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

/// Refuses a request: JSON under `/api/`, an HTML page elsewhere (a read that needs a login
/// is sent to `/login` instead).
fn refuse(path_and_query: &str, e: WebError) -> Response {
    let path = path_and_query.split('?').next().unwrap_or("");
    if wants_json(path) {
        return e.into_response();
    }
    if e.status == StatusCode::UNAUTHORIZED {
        let next: String = url_encode(path_and_query);
        return Redirect::to(&format!("/login?next={next}")).into_response();
    }
    super::pages::error_page(&e)
}

/// Percent-encodes `s` for a query value.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The guard every request of the web UI and API passes (see the module's docs). It puts
/// the [`Viewer`] in the request's extensions.
pub async fn guard(State(web): State<Arc<Web>>, mut req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_owned());
    let viewer = match bearer(req.headers()) {
        Some(token) => match web.auth.name_of(token) {
            Some(name) => Viewer::Token(name.to_owned()),
            None => {
                return refuse(
                    &path_and_query,
                    WebError::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        "the bearer token is not one of [http] tokens_file's",
                    ),
                )
            }
        },
        None => session_cookie(req.headers())
            .and_then(|id| web.auth.session(&id))
            .map_or(Viewer::Anonymous, Viewer::Session),
    };
    let acts = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if acts && path != "/login" {
        match &viewer {
            Viewer::Anonymous => {
                let why = if web.auth.has_tokens() {
                    "this action needs a token: send `Authorization: Bearer TOKEN`, or log in at /login"
                } else {
                    "this action needs a token, and the node has none: set [http] tokens_file in troupe.toml"
                };
                return refuse(
                    &path_and_query,
                    WebError::new(StatusCode::UNAUTHORIZED, "unauthorized", why),
                );
            }
            Viewer::Token(_) => {}
            Viewer::Session(s) => {
                let (parts, body) = req.into_parts();
                let (sent, body) = match parts.headers.get(CSRF_HEADER) {
                    Some(v) => (v.to_str().ok().map(str::to_owned), body),
                    None => match form_csrf(&parts.headers, body).await {
                        Ok(found) => found,
                        Err(e) => return refuse(&path_and_query, e),
                    },
                };
                if sent.as_deref() != Some(s.csrf.as_str()) {
                    return refuse(
                        &path_and_query,
                        WebError::new(
                            StatusCode::FORBIDDEN,
                            "forbidden",
                            "the CSRF token is missing or wrong: reload the page and try again",
                        ),
                    );
                }
                req = Request::from_parts(parts, body);
            }
        }
    } else if !acts && web.auth.reads_need_token && !always_open(&path) {
        if let Viewer::Anonymous = viewer {
            return refuse(
                &path_and_query,
                WebError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this node serves a non-loopback address: reads need a token too",
                ),
            );
        }
    }
    req.extensions_mut().insert(viewer);
    next.run(req).await
}

/// The `csrf` field of a form body, and the body to pass on (read into memory, at most
/// [`MAX_FORM_BYTES`]). Bodies that are not forms carry no token.
async fn form_csrf(headers: &HeaderMap, body: Body) -> Result<(Option<String>, Body), WebError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((None, body));
    }
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            WebError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("a form body is at most {MAX_FORM_BYTES} bytes"),
            )
        })?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let csrf = fields
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v);
    Ok((csrf, Body::from(bytes)))
}

/// `/login` and `/logout`.
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

/// The query of `GET /login`.
#[derive(serde::Deserialize)]
struct LoginQuery {
    /// Where to go after logging in.
    next: Option<String>,
}

async fn login_page(
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
    axum::Extension(viewer): axum::Extension<Viewer>,
) -> Response {
    super::pages::login_page(&viewer, q.next.as_deref(), None)
}

/// The form `POST /login` takes.
#[derive(serde::Deserialize)]
struct LoginForm {
    /// One of the tokens file's tokens.
    token: String,
    /// Where to go after logging in (a path on this server).
    next: Option<String>,
}

async fn login(State(web): State<Arc<Web>>, Form(form): Form<LoginForm>) -> Response {
    let Some(session) = web.auth.login(form.token.trim()) else {
        let (status, why) = if web.auth.has_tokens() {
            (
                StatusCode::FORBIDDEN,
                "that token is not one of the node's tokens",
            )
        } else {
            (
                StatusCode::FORBIDDEN,
                "the node has no tokens: set [http] tokens_file in troupe.toml",
            )
        };
        let mut r = super::pages::login_page(&Viewer::Anonymous, form.next.as_deref(), Some(why));
        *r.status_mut() = status;
        return r;
    };
    // Only a local path: never an open redirect (`//host`, `/\host` are other sites).
    let next = super::pages::local_next(form.next.as_deref().unwrap_or(""), "/runs");
    let cookie = cookie::Cookie::build((SESSION_COOKIE, session.id))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::seconds(SESSION_TTL.as_secs() as i64))
        .build();
    let mut r = Redirect::to(&next).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        web.auth.logout(&id);
    }
    let cookie = cookie::Cookie::build((SESSION_COOKIE, ""))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::ZERO)
        .build();
    let mut r = Redirect::to("/runs").into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
