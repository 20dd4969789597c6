//! Only the machine's own browser window drives a local UI: the tablet's crew UI, which acts
//! for the signed-in crew (face check, consent, views), and the patient portal, which sends a
//! PIN to the card (a page elsewhere that could post one would lock the card). A web page in
//! the same browser, another process on the machine, or a DNS-rebound name must get nothing
//! from such a UI:
//! - it listens on loopback only;
//! - every request must name an allowed `Host` (defeats DNS rebinding);
//! - every page and action needs a secret made at each start, which only the window opened
//!   from the one-time launch URL holds (`SameSite=Strict`, `HttpOnly` cookie);
//! - every state-changing request must come from our own origin (`Origin`, `Sec-Fetch-Site`);
//! - pages carry a CSP without inline scripts, and may not be framed.
//!
//! Limit: browsers send a host's cookies to every port of it, so a malicious program that
//! listens on another loopback port and gets the machine's browser to visit it receives the
//! key. Such a program already runs on the machine; binding the key to the port needs TLS
//! (`__Host-` cookies), which comes with device certificates.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// Where the one-time launch code is redeemed: `/launch/{code}`.
pub const LAUNCH_ROUTE: &str = "/launch/{code}";

/// Sent with every response of such a UI (the same policy as every page of ours).
pub const CONTENT_SECURITY_POLICY: &str = crate::security::CONTENT_SECURITY_POLICY;

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(
        "this UI listens on loopback only (it is for this machine's own browser); {0} is not a \
         loopback address"
    )]
    NotLoopback(SocketAddr),
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ForeignHost,
    NoKey,
    ForeignOrigin,
    LaunchUsed,
}

impl Refusal {
    fn message(self) -> &'static str {
        match self {
            Refusal::ForeignHost => "この宛先名では利用できません (host not allowed)",
            Refusal::NoKey => {
                "この画面は起動時に表示されたURLから開いてください (open the launch URL printed at start)"
            }
            Refusal::ForeignOrigin => {
                "他のページからの操作は受け付けません (cross-origin request refused)"
            }
            Refusal::LaunchUsed => {
                "この起動URLは使用済みです。アプリを再起動してください (this launch URL was used already; restart)"
            }
        }
    }

    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            [(header::CACHE_CONTROL, "no-store")],
            self.message(),
        )
            .into_response()
    }
}

pub struct Guard {
    addr: SocketAddr,
    /// The cookie that carries the window's secret (one name per UI, so two UIs on one host
    /// keep their own).
    cookie: &'static str,
    /// The window's secret, made at start.
    key: String,
    /// Redeemed once, then gone.
    launch_code: Mutex<Option<String>>,
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl Guard {
    /// For a UI bound to `addr` (after binding, so the port is the real one), its window's
    /// secret in the cookie `cookie`.
    pub fn new(addr: SocketAddr, cookie: &'static str) -> Result<Self, GuardError> {
        if !addr.ip().is_loopback() {
            return Err(GuardError::NotLoopback(addr));
        }
        let port = addr.port();
        let hosts: Vec<String> = [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            addr.to_string(),
        ]
        .into_iter()
        .collect();
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        Ok(Self {
            addr,
            cookie,
            key: crate::random_token(),
            launch_code: Mutex::new(Some(crate::random_token())),
            hosts,
            origins,
        })
    }

    /// Refuses a listen address that is not loopback, before binding.
    pub fn check_listen(addr: SocketAddr) -> Result<(), GuardError> {
        if addr.ip().is_loopback() {
            Ok(())
        } else {
            Err(GuardError::NotLoopback(addr))
        }
    }

    /// The one-time URL that opens the crew UI in the tablet's browser window. `None` once it
    /// was used.
    pub fn launch_url(&self) -> Option<String> {
        let code = self.launch_code.lock().ok()?.clone()?;
        Some(format!("http://{}/launch/{code}", self.addr))
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| self.hosts.iter().any(|a| a.eq_ignore_ascii_case(h)))
    }

    fn has_key(&self, headers: &HeaderMap) -> bool {
        // Any of the values: a page on another port of this host can plant a decoy cookie
        // with a longer path, which the browser sends first.
        crate::cookies(headers, self.cookie)
            .any(|v| bool::from(v.as_bytes().ct_eq(self.key.as_bytes())))
    }

    fn same_origin(&self, headers: &HeaderMap) -> bool {
        let origin_ok = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| self.origins.iter().any(|a| a.eq_ignore_ascii_case(o)));
        let fetch_site_ok = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v == "same-origin");
        origin_ok && fetch_site_ok
    }

    /// The decision for one request, before it reaches a handler.
    pub fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), Refusal> {
        if !self.host_allowed(headers) {
            return Err(Refusal::ForeignHost);
        }
        let public =
            path == "/healthz" || path.starts_with("/static/") || path.starts_with("/launch/");
        if public {
            return Ok(());
        }
        if !self.has_key(headers) {
            return Err(Refusal::NoKey);
        }
        let safe = matches!(*method, Method::GET | Method::HEAD);
        if !safe && !self.same_origin(headers) {
            return Err(Refusal::ForeignOrigin);
        }
        Ok(())
    }

    /// Redeems the launch code: sets the window's cookie once.
    fn redeem(&self, code: &str, headers: &HeaderMap) -> Response {
        let redeemed = match self.launch_code.lock() {
            Ok(mut slot) => {
                let matches = slot
                    .as_deref()
                    .is_some_and(|c| bool::from(c.as_bytes().ct_eq(code.as_bytes())));
                if matches {
                    *slot = None;
                }
                matches
            }
            Err(_) => false,
        };
        if redeemed {
            let mut resp = Redirect::to("/").into_response();
            if let Ok(v) =
                HeaderValue::from_str(&crate::session_cookie(self.cookie, &self.key, false))
            {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            return resp;
        }
        if self.has_key(headers) {
            return Redirect::to("/").into_response();
        }
        Refusal::LaunchUsed.into_response()
    }
}

/// The launch route's handler.
pub async fn launch(
    State(guard): State<Arc<Guard>>,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Response {
    guard.redeem(&code, &headers)
}

/// `app` behind `guard`: the launch route added, and every request through `layer`.
pub fn guarded(app: axum::Router, guard: Arc<Guard>) -> axum::Router {
    app.merge(
        axum::Router::new()
            .route(LAUNCH_ROUTE, axum::routing::get(launch))
            .with_state(guard.clone()),
    )
    .layer(axum::middleware::from_fn_with_state(guard, layer))
}

/// The middleware: refuses what `Guard::check` refuses and adds the security headers.
pub async fn layer(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    if let Err(refusal) = guard.check(req.method(), req.uri().path(), req.headers()) {
        tracing::warn!(
            ?refusal,
            path = req.uri().path(),
            "local UI request refused"
        );
        return crate::security::with_headers(refusal.into_response());
    }
    crate::security::with_headers(next.run(req).await)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const COOKIE: &str = "terminal_key";

    fn guard() -> Guard {
        Guard::new("127.0.0.1:8442".parse().unwrap(), COOKIE).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_loopback_addresses_may_listen() {
        assert!(Guard::new("0.0.0.0:8442".parse().unwrap(), COOKIE).is_err());
        assert!(Guard::new("192.168.1.5:8442".parse().unwrap(), COOKIE).is_err());
        assert!(Guard::new("[::1]:8442".parse().unwrap(), COOKIE).is_ok());
        assert!(Guard::check_listen("10.0.0.1:1".parse().unwrap()).is_err());
    }

    #[test]
    fn the_launch_code_works_once_and_its_cookie_then_opens_the_ui() {
        let g = guard();
        let url = g.launch_url().unwrap();
        let code = url.rsplit('/').next().unwrap().to_owned();
        let host = [("host", "127.0.0.1:8442")];
        assert_eq!(
            g.check(&Method::GET, "/", &headers(&host)),
            Err(Refusal::NoKey)
        );
        let first = g.redeem(&code, &headers(&host));
        assert_eq!(first.status(), StatusCode::SEE_OTHER);
        let cookie = first.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let pair = cookie.split(';').next().unwrap().to_owned();
        assert_eq!(
            g.redeem(&code, &headers(&host)).status(),
            StatusCode::FORBIDDEN
        );
        assert!(g.launch_url().is_none());
        let with_key = [("host", "127.0.0.1:8442"), ("cookie", pair.as_str())];
        assert_eq!(
            g.check(&Method::GET, "/screen", &headers(&with_key)),
            Ok(())
        );
        let decoy = format!("{COOKIE}=planted; {pair}");
        let with_decoy = [("host", "127.0.0.1:8442"), ("cookie", decoy.as_str())];
        assert_eq!(
            g.check(&Method::GET, "/screen", &headers(&with_decoy)),
            Ok(()),
            "a planted cookie with a longer path does not lock the crew out"
        );
    }

    #[test]
    fn a_foreign_host_a_missing_key_or_a_foreign_origin_is_refused() {
        let g = guard();
        let key = format!("{COOKIE}={}", g.key);
        let ok = |extra: &[(&'static str, &str)]| {
            let mut all = vec![("host", "127.0.0.1:8442"), ("cookie", key.as_str())];
            all.extend_from_slice(extra);
            headers(&all)
        };
        assert_eq!(
            g.check(
                &Method::GET,
                "/screen",
                &headers(&[("host", "evil.example:8442"), ("cookie", key.as_str())])
            ),
            Err(Refusal::ForeignHost),
            "DNS rebinding arrives with the attacker's host name"
        );
        assert_eq!(
            g.check(
                &Method::GET,
                "/healthz",
                &headers(&[("host", "evil.example")])
            ),
            Err(Refusal::ForeignHost)
        );
        assert_eq!(
            g.check(
                &Method::POST,
                "/incidents/1/face",
                &headers(&[
                    ("host", "127.0.0.1:8442"),
                    ("origin", "http://127.0.0.1:8442")
                ])
            ),
            Err(Refusal::NoKey)
        );
        assert_eq!(
            g.check(&Method::POST, "/incidents/1/face", &ok(&[])),
            Err(Refusal::ForeignOrigin),
            "a POST without Origin (curl) is refused"
        );
        assert_eq!(
            g.check(
                &Method::POST,
                "/incidents/1/face",
                &ok(&[("origin", "http://evil.example")])
            ),
            Err(Refusal::ForeignOrigin)
        );
        assert_eq!(
            g.check(
                &Method::POST,
                "/incidents/1/face",
                &ok(&[
                    ("origin", "http://127.0.0.1:8442"),
                    ("sec-fetch-site", "cross-site")
                ])
            ),
            Err(Refusal::ForeignOrigin)
        );
        assert_eq!(
            g.check(
                &Method::POST,
                "/incidents/1/face",
                &ok(&[
                    ("origin", "http://127.0.0.1:8442"),
                    ("sec-fetch-site", "same-origin")
                ])
            ),
            Ok(())
        );
    }
}
