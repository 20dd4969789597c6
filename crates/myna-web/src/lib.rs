//! What the `ems` and `terminal` web UIs share: the pinned, vendored htmx file and the
//! stylesheet (served by our own process, never a CDN), random tokens, cookies and rendering of
//! askama pages.

pub mod csrf;
pub mod own_window;
pub mod security;
pub mod serve;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use rand::RngCore;

pub const HTMX_PATH: &str = "/static/htmx-2.0.4.min.js";
pub const CSS_PATH: &str = "/static/app.css";

const HTMX: &str = include_str!("../assets/htmx-2.0.4.min.js");
const CSS: &str = include_str!("../assets/app.css");

/// A static file of ours, cached for a day.
pub fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        body,
    )
        .into_response()
}

/// Routes for the static files.
pub fn static_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            HTMX_PATH,
            get(|| async { asset(HTMX, "text/javascript; charset=utf-8") }),
        )
        .route(
            CSS_PATH,
            get(|| async { asset(CSS, "text/css; charset=utf-8") }),
        )
}

/// A fresh 256-bit secret, URL-safe base64 (credentials, sessions, idempotency keys).
pub fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_secret())
}

/// 32 fresh random bytes (keys).
pub fn random_secret() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A fresh random number (a process's origin among those sharing a database).
pub fn random_u64() -> u64 {
    rand::rng().next_u64()
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    cookies(headers, name).next()
}

/// Every value of cookie `name` the request carries. A browser sends several when another
/// site on the same host set one with a longer path; a check must not trust only the first.
pub fn cookies<'a, 'n>(
    headers: &'a HeaderMap,
    name: &'n str,
) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Japan time of day, `HH:MM:SS`, of a UTC instant in ms (JST has no daylight saving time).
pub fn jst_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            (t + chrono::Duration::hours(9))
                .format("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// A `Set-Cookie` value for a session cookie: HttpOnly, SameSite=Strict, whole site.
pub fn session_cookie(name: &str, value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

/// A `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(name: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// Renders a page; a template error is a 500 with a plain message, never a panic.
pub fn page<T: askama::Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("page could not be rendered: {e}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; sess=xyz"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, "sess"), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn tokens_are_distinct_and_url_safe() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
