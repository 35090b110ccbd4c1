//! The console's web server (axum on tokio): routes, shared state, security headers and the
//! cross-site request check that runs before every state-changing request. Pages are askama
//! templates compiled into the binary; the one stylesheet and the one script are compiled in
//! too, so nothing is fetched at run time (the Content-Security-Policy forbids it anyway).

mod actions;
mod auth;
mod charts;
mod live;
mod model;
mod pages;

use super::kafka::ControlWriter;
use super::metrics::Metrics;
use super::store::Db;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use tokio::sync::broadcast;

pub use auth::Throttle;

/// What every handler shares.
pub struct AppState {
    pub db: Db,
    /// New alerts (JSON) for the live view, sent after their batch commits.
    pub live: broadcast::Sender<String>,
    /// The control topic's writer; `None` when the console runs without Kafka (offline).
    pub control: Option<Arc<ControlWriter>>,
    pub throttle: Throttle,
    pub metrics: Arc<Metrics>,
    /// Add `Secure` to the session cookie (behind TLS).
    pub secure_cookies: bool,
    /// Set to true at shutdown: live streams end so the server can stop.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// The rule ids for the inbox's filter, re-read at most every 30 s (reading them is a
    /// scan of every alert).
    pub rules: tokio::sync::Mutex<Option<(std::time::Instant, Vec<String>)>>,
}

pub type Shared = Arc<AppState>;

/// The application's routes.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(pages::root))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/inbox", get(pages::inbox))
        .route("/cases/{id}", get(pages::case))
        .route("/cases/{id}/act", post(actions::case_action))
        .route("/cases/{id}/lock", post(actions::lock_action))
        .route("/cases/bulk", post(actions::bulk))
        .route("/overview", get(pages::overview))
        .route("/precision", get(pages::precision))
        .route("/labels.jsonl", get(pages::labels))
        .route("/audit", get(pages::audit))
        .route("/live", get(live::stream))
        .route("/static/style.css", get(style))
        .route("/static/console.js", get(script))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(not_found)
        .layer(middleware::from_fn(cross_site_check))
        .layer(middleware::from_fn(security_headers))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/style.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../static/console.js"),
    )
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "not found")
}

/// Headers on every response: a strict CSP (scripts and styles from this origin only, no
/// inline script, no fetch elsewhere, no framing), no MIME sniffing, no referrer to other
/// sites, no caching.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: with no-referrer, browsers send `Origin: null` on
    // form posts, which the cross-site check must refuse.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// Every request other than GET/HEAD must come from this origin: a browser's
/// `Sec-Fetch-Site: cross-site`/`same-site`, or an `Origin` whose host is not this host, is
/// refused before any handler runs. (The per-session CSRF token is checked as well, by each
/// handler; this is the second, independent layer.)
async fn cross_site_check(req: Request, next: Next) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return next.run(req).await;
    }
    let h = req.headers();
    let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(site, Some("cross-site") | Some("same-site")) {
        return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    if let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let o_host = origin.split("://").nth(1).unwrap_or("");
        if origin == "null" || o_host != host {
            return (StatusCode::FORBIDDEN, "cross-origin request refused").into_response();
        }
    }
    next.run(req).await
}

/// An HTML page from a template, or a 500 that says nothing of the internals.
pub(crate) fn html<T: askama::Template>(t: &T) -> Response {
    match t.render() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => {
            tracing::error!("console: template error: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A server-side failure: logged, shown as a bare 500.
pub(crate) fn internal(e: anyhow::Error) -> Response {
    tracing::error!("console: {e:#}");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

/// A parsed `application/x-www-form-urlencoded` body (repeated keys kept, for bulk ids).
pub(crate) struct FormData(pub Vec<(String, String)>);

impl FormData {
    pub fn parse(body: &[u8]) -> FormData {
        FormData(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    pub fn get(&self, k: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
    pub fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}
