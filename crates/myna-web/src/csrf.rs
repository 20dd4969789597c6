//! Cross-site request forgery defence for the browser forms of a cookie-authenticated UI (the
//! desk and the hospital screen). `SameSite` alone is not enough: it does not cover a sibling
//! site, an older browser, or a top-level navigation. Every state-changing request must
//! - come from our own origin: `Origin` names the request's own `Host` (or, without `Origin`,
//!   `Sec-Fetch-Site: same-origin`); a request that shows neither is refused;
//! - when a session cookie is present, carry the session's token in the form field `csrf`.
//!   The token is a hash of the session's cookie value, which another site can neither read
//!   nor compute, so it needs no storage and ends with the session.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The form field that carries the token.
pub const FIELD: &str = "csrf";

/// Largest form the guard reads to find the token.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The token for the session whose cookie value is `session`.
pub fn token(session: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"myna-kyukyu csrf v1\0");
    h.update(session.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
}

/// Whether the request shows it comes from a page of this very origin.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    let Some(host) = text(header::HOST) else {
        return false;
    };
    match text(header::ORIGIN) {
        Some(origin) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        None => text(header::HeaderName::from_static("sec-fetch-site")) == Some("same-origin"),
    }
}

fn refused(why: &'static str) -> Response {
    tracing::warn!(why, "form refused as cross-site");
    (
        StatusCode::FORBIDDEN,
        "この操作は受け付けられません。画面を開き直してから、もう一度操作してください。\n",
    )
        .into_response()
}

/// For a GET that records something (a hospital's read of a patient's copy goes into the
/// view log): refused when the browser says another site asked for it (`Sec-Fetch-Site`
/// `cross-site` or `same-site`, e.g. an image on a sibling site). A typed address or a
/// bookmark (`none`) and our own pages pass.
pub async fn own_pages_only(req: Request, next: Next) -> Response {
    let site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok());
    if matches!(site, Some(s) if s != "same-origin" && s != "none") {
        return refused("a read asked for by another site");
    }
    next.run(req).await
}

/// The middleware: refuses a state-changing request that fails either check. Requests that
/// change nothing (GET, HEAD) pass. `login_path` needs the origin check only: a browser may
/// still hold a session cookie of an ended session there, and its form has no token.
pub async fn guard(
    cookie_name: &'static str,
    login_path: &'static str,
    req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    if !same_origin(req.headers()) {
        return refused("origin");
    }
    if req.uri().path() == login_path {
        return next.run(req).await;
    }
    // Several values (a sibling site planted one with a longer path): refuse rather than
    // guess which session the form belongs to.
    if crate::cookies(req.headers(), cookie_name).count() > 1 {
        return refused("more than one session cookie");
    }
    let Some(session) = crate::cookie(req.headers(), cookie_name).map(str::to_owned) else {
        // No session: the handler sends the browser to the sign-in; the origin check holds.
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return refused("unreadable form");
    };
    let expected = token(&session);
    let carried = form_urlencoded_value(&bytes, FIELD);
    let matches = carried.is_some_and(|t| bool::from(t.as_bytes().ct_eq(expected.as_bytes())));
    if !matches {
        return refused("token");
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// The first value of `name` in an `application/x-www-form-urlencoded` body.
fn form_urlencoded_value(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_a_request_from_its_own_origin_is_same_origin() {
        let own = [("host", "ems.example:8441")];
        assert!(same_origin(&headers(&[
            own[0],
            ("origin", "https://ems.example:8441")
        ])));
        assert!(same_origin(&headers(&[
            own[0],
            ("origin", "http://EMS.example:8441")
        ])));
        for origin in [
            "https://evil.example",
            "https://ems.example",
            "https://ems.example:8441.evil.example",
            "null",
        ] {
            assert!(
                !same_origin(&headers(&[own[0], ("origin", origin)])),
                "{origin}"
            );
        }
        assert!(same_origin(&headers(&[
            own[0],
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&headers(&[
            own[0],
            ("sec-fetch-site", "same-site")
        ])));
        assert!(!same_origin(&headers(&own)), "neither header: refused");
        assert!(!same_origin(&headers(&[(
            "origin",
            "https://ems.example:8441"
        )])));
    }

    #[test]
    fn tokens_differ_per_session_and_are_found_in_a_form() {
        assert_ne!(token("a"), token("b"));
        assert_eq!(token("a"), token("a"));
        let body = format!("login=x&csrf={}&csrf=other", token("a"));
        assert_eq!(
            form_urlencoded_value(body.as_bytes(), FIELD),
            Some(token("a"))
        );
        assert_eq!(form_urlencoded_value(b"login=x", FIELD), None);
        assert_eq!(form_urlencoded_value(b"%ZZ=\xff", FIELD), None);
    }
}
