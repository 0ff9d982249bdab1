//! Optional bearer-token access control (`API_TOKEN`).
//!
//! When a token is set, writes (`POST`) need `Authorization: Bearer <token>`; with
//! `API_TOKEN_READS=true`, reads of tasks and statistics and the WebSocket need it too (browsers
//! cannot set headers on a WebSocket, so `/ws` also accepts `?token=`). Probes and scrapers
//! (`/livez`, `/healthz`, `/metrics`), the API description (`/openapi.json`, `/docs`) and the
//! dashboard's own files stay open: a browser cannot send a header when it opens a page, and the
//! dashboard sends the token on its API calls. Tokens are compared in constant time.

use salvo::http::Method;
use salvo::prelude::*;

use crate::error::ApiError;
use crate::state::AppState;

/// The data a read token protects: tasks, statistics and the event stream.
fn is_protected_read(path: &str) -> bool {
    path == "/tasks" || path.starts_with("/tasks/") || path == "/stats" || path == "/ws"
}

#[handler]
pub async fn require_token(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let state = AppState::from_depot(depot);
    let Some(expected) = state.settings.token.as_deref() else {
        return;
    };
    let path = req.uri().path();
    let is_write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let needs_token = is_write || (state.settings.token_for_reads && is_protected_read(path));
    if !needs_token {
        return;
    }
    let presented = bearer(req).or_else(|| {
        (path == "/ws")
            .then(|| req.query::<String>("token"))
            .flatten()
    });
    let valid =
        presented.is_some_and(|token| constant_time_eq(token.as_bytes(), expected.as_bytes()));
    if !valid {
        res.add_header("www-authenticate", "Bearer", true)
            .expect("a valid header");
        res.render(ApiError::Unauthorized);
        ctrl.skip_rest();
    }
}

fn bearer(req: &Request) -> Option<String> {
    let value = req.header::<String>("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Equal-length inputs take the same time whatever their content, so response timing does not
/// reveal how much of a guessed token was right. (The length itself is not secret.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret-longer"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
