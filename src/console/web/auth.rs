//! Logging in and out, the session cookie, the user extractor every page uses (no session:
//! GET requests go to the login page, anything else is refused), role checks, the CSRF token
//! check, and login throttling.

use super::{html, internal, FormData, Shared};
use crate::console::store::users::{self, Role, SessionUser};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "sg_session";

/// Failed logins per user name and per client address; past [`Throttle::LIMIT`] within
/// [`Throttle::WINDOW`] further attempts are refused (even with the right password) until the
/// window has passed. In memory: a restart forgets, which only helps someone who can restart
/// the console.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Throttle {
    pub const LIMIT: usize = 5;
    pub const WINDOW: Duration = Duration::from_secs(15 * 60);

    fn recent(&self, key: &str) -> usize {
        let mut m = self.failures.lock().expect("throttle lock");
        let v = m.entry(key.to_string()).or_default();
        v.retain(|t| t.elapsed() < Self::WINDOW);
        v.len()
    }

    /// May `keys` (user name, client address) try again?
    pub fn allowed(&self, keys: &[&str]) -> bool {
        keys.iter().all(|k| self.recent(k) < Self::LIMIT)
    }

    pub fn failed(&self, keys: &[&str]) {
        let mut m = self.failures.lock().expect("throttle lock");
        for k in keys {
            m.entry(k.to_string()).or_default().push(Instant::now());
        }
    }
}

/// The logged-in user of a request.
pub struct User(pub SessionUser, pub String);

/// A refused request: its status and a short reason (small, unlike a whole response).
#[derive(Debug)]
pub struct Denied(pub StatusCode, pub &'static str);

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

impl User {
    /// Refuse unless the user has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), Denied> {
        if self.0.role >= role {
            Ok(())
        } else {
            Err(Denied(StatusCode::FORBIDDEN, "your role may not do this"))
        }
    }

    /// Refuse unless `token` is this session's CSRF token (compared in constant time).
    pub fn check_csrf(&self, token: &str) -> Result<(), Denied> {
        let a = self.0.csrf.as_bytes();
        let b = token.as_bytes();
        let same =
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        if same && !a.is_empty() {
            Ok(())
        } else {
            Err(Denied(StatusCode::FORBIDDEN, "missing or wrong CSRF token"))
        }
    }
}

/// The session token in a request's cookies.
pub fn session_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

impl FromRequestParts<Shared> for User {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &Shared) -> Result<Self, Self::Rejection> {
        let refuse = |parts: &Parts| {
            if parts.method == Method::GET && parts.uri.path() != "/live" {
                Redirect::to("/login").into_response()
            } else {
                (StatusCode::UNAUTHORIZED, "log in first").into_response()
            }
        };
        let Some(token) = session_token(parts) else {
            return Err(refuse(parts));
        };
        match users::session(&st.db, &token).await {
            Ok(Some(u)) => Ok(User(u, token)),
            Ok(None) => Err(refuse(parts)),
            Err(e) => Err(internal(e)),
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    error: String,
}

pub async fn login_page() -> Response {
    html(&LoginPage {
        error: String::new(),
    })
}

/// POST /login: check the password (throttled), open a session, set the cookie.
pub async fn login(
    State(st): State<Shared>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let f = FormData::parse(&body);
    let (name, password) = (
        f.get("user").trim().to_string(),
        f.get("password").to_string(),
    );
    let ip = addr.ip().to_string();
    let keys = [format!("user:{name}"), format!("ip:{ip}")];
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    if !st.throttle.allowed(&keys) {
        st.metrics.logins.with_label_values(&["throttled"]).inc();
        let page = LoginPage {
            error: "Too many failed attempts; try again in 15 minutes.".into(),
        };
        return (StatusCode::TOO_MANY_REQUESTS, html(&page)).into_response();
    }
    match users::login(&st.db, &name, &password, &ip).await {
        Ok(Some(token)) => {
            st.metrics.logins.with_label_values(&["ok"]).inc();
            let secure = if st.secure_cookies { "; Secure" } else { "" };
            let cookie = format!(
                "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                users::SESSION_MS / 1000
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/inbox")).into_response()
        }
        Ok(None) => {
            st.throttle.failed(&keys);
            st.metrics.logins.with_label_values(&["failed"]).inc();
            let page = LoginPage {
                error: "Wrong user name or password.".into(),
            };
            (StatusCode::UNAUTHORIZED, html(&page)).into_response()
        }
        Err(e) => internal(e),
    }
}

/// POST /logout: end the session (CSRF-checked), clear the cookie.
pub async fn logout(State(st): State<Shared>, user: User, body: Bytes) -> Response {
    if let Err(r) = user.check_csrf(FormData::parse(&body).get("csrf")) {
        return r.into_response();
    }
    if let Err(e) = users::logout(&st.db, &user.1, &user.0.name).await {
        return internal(e);
    }
    let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_refuses_after_the_limit_per_key() {
        let t = Throttle::default();
        for _ in 0..Throttle::LIMIT {
            assert!(t.allowed(&["user:a", "ip:1"]));
            t.failed(&["user:a", "ip:1"]);
        }
        assert!(
            !t.allowed(&["user:a", "ip:2"]),
            "the user is throttled from anywhere"
        );
        assert!(
            !t.allowed(&["user:b", "ip:1"]),
            "the address is throttled for any user"
        );
        assert!(t.allowed(&["user:b", "ip:2"]));
    }
}
