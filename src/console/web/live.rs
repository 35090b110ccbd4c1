//! Live updates: Server-Sent Events carrying each new alert (as JSON text, which the page's
//! script inserts with `textContent`, never as markup) once its ingest batch has committed.

use super::auth::User;
use super::Shared;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// GET /live: the alert stream of a logged-in user.
pub async fn stream(
    State(st): State<Shared>,
    _user: User,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = st.live.subscribe();
    let closing = st.closing.clone();
    let s = stream::unfold((rx, closing), |(mut rx, mut closing)| async move {
        let r = tokio::select! {
            r = rx.recv() => r,
            _ = closing.wait_for(|c| *c) => return None,
        };
        let event = match r {
            Ok(json) => Event::default().event("alert").data(json),
            // A slow browser missed some: tell it to reload rather than show a gap.
            Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), (rx, closing)))
    });
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
