//! Optional bearer-token access control (`API_TOKEN`).
//!
//! The check is a hoop on the routers it protects ([`protect`]), not a filter on path strings:
//! whatever spelling of a path the router accepts (`//tasks`, `/%74asks`, `/tasks/`), the hoop of
//! the router that serves it runs. On the protected routers (tasks, statistics, `/ws`) writes
//! always need the token once one is set, and reads need it too with `API_TOKEN_READS=true`.
//! Probes and scrapers (`/livez`, `/healthz`, `/metrics`), the API description and the
//! dashboard's files stay open.
//!
//! Browsers cannot set headers on a WebSocket, so `/ws` also takes the token as a subprotocol:
//! `new WebSocket(url, ["taskflow", "taskflow.bearer." + base64url(token)])`; the server selects
//! `taskflow`. The token never appears in the URL, so it stays out of access logs.

use base64::Engine as _;
use salvo::http::Method;
use salvo::prelude::*;
use subtle::ConstantTimeEq as _;

use crate::error::ApiError;
use crate::state::AppState;

/// The subprotocol the server selects on `/ws`.
pub const WS_PROTOCOL: &str = "taskflow";
/// The prefix of the subprotocol entry that carries the token, base64url-encoded (subprotocol
/// names allow only a few characters, and a token may hold any).
const WS_TOKEN_PREFIX: &str = "taskflow.bearer.";

/// Refuses the request with 401 unless it presents the token, when this request needs one.
#[handler]
pub async fn protect(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let state = AppState::from_depot(depot);
    let Some(expected) = state.settings.token.as_deref() else {
        return;
    };
    let is_write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !is_write && !state.settings.token_for_reads {
        return;
    }
    let presented = bearer(req).or_else(|| websocket_token(req));
    if !presented.is_some_and(|token| tokens_match(&token, expected)) {
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

/// The token of a `taskflow.bearer.<base64url>` entry in `Sec-WebSocket-Protocol`.
fn websocket_token(req: &Request) -> Option<String> {
    req.headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|entry| entry.trim().strip_prefix(WS_TOKEN_PREFIX))
        .and_then(|encoded| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// Constant time for equal lengths, so response timing does not reveal how much of a guessed
/// token was right (the length itself is not secret).
fn tokens_match(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::tokens_match;

    #[test]
    fn tokens_match_only_when_identical() {
        assert!(tokens_match("secret", "secret"));
        assert!(!tokens_match("secret", "secreT"));
        assert!(!tokens_match("secret", "secret-longer"));
        assert!(!tokens_match("", "x"));
    }
}
