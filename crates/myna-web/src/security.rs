//! The security headers every page of ours carries: a CSP that runs only our own script files
//! (no inline scripts, no `eval`) and forbids framing, `nosniff`, and a referrer policy.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// Scripts only from our own files; styles may be inline (htmx's indicator style and a few
/// `style` attributes), which runs no code.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Adds the headers to a response.
pub fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: under it Chromium sends `Origin: null` on same-origin form posts.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// The middleware form of `with_headers`.
pub async fn layer(req: Request, next: Next) -> Response {
    with_headers(next.run(req).await)
}

/// The `Host` values a service answers to: its own names only, so that a page on a name the
/// attacker controls (DNS rebinding to the service's address) gets nothing, and the origin
/// check of the forms compares with a host that is really ours.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    /// The listener's own address, `localhost` for a loopback one, and the names given. A
    /// name with a port (`ems.example:8443`, `[fd00::1]:8443`) is taken as written; a name
    /// without one matches with the listener's port and without a port (a browser omits 443,
    /// and a proxy in front may listen on it).
    pub fn for_listener(addr: std::net::SocketAddr, names: &[String]) -> Self {
        let port = addr.port();
        let mut hosts = Vec::new();
        if !addr.ip().is_unspecified() {
            hosts.push(addr.to_string());
        }
        if addr.ip().is_loopback() {
            hosts.push(format!("localhost:{port}"));
            hosts.push(format!("127.0.0.1:{port}"));
        }
        for n in names {
            let n = n.trim().to_ascii_lowercase();
            let has_port = match n.strip_prefix('[') {
                Some(v6) => v6.contains("]:"),
                None => n.contains(':'),
            };
            if has_port {
                hosts.push(n);
            } else {
                hosts.push(format!("{n}:{port}"));
                hosts.push(n);
            }
        }
        hosts.sort();
        hosts.dedup();
        Self(hosts)
    }

    /// A listener on every address answers only the names given: without any it would
    /// answer none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn allows(&self, host: Option<&str>) -> bool {
        host.is_some_and(|h| self.0.iter().any(|a| a.eq_ignore_ascii_case(h)))
    }
}

/// Refuses a request whose `Host` is not one of ours (421, as HTTP says for a request sent to
/// the wrong server). `/healthz` answers any host (load balancers probe by address).
pub async fn host_guard(hosts: std::sync::Arc<AllowedHosts>, req: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if req.uri().path() != "/healthz" && !hosts.allows(host) {
        tracing::warn!(host, "request for a host name that is not ours");
        return with_headers(
            (
                axum::http::StatusCode::MISDIRECTED_REQUEST,
                "unknown host\n",
            )
                .into_response(),
        );
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_our_own_names_and_address_are_allowed() {
        let loopback = AllowedHosts::for_listener("127.0.0.1:8441".parse().unwrap(), &[]);
        for ok in ["127.0.0.1:8441", "localhost:8441", "LOCALHOST:8441"] {
            assert!(loopback.allows(Some(ok)), "{ok}");
        }
        for no in ["rebind.example:8441", "127.0.0.1:9999", "localhost", ""] {
            assert!(!loopback.allows(Some(no)), "{no}");
        }
        assert!(!loopback.allows(None), "no Host header");

        let public = AllowedHosts::for_listener(
            "10.0.0.5:8441".parse().unwrap(),
            &[
                "ems.kawasaki.example".into(),
                "desk.example:8443".into(),
                "[fd00::1]:8443".into(),
                "[fd00::2]".into(),
            ],
        );
        for ok in [
            "10.0.0.5:8441",
            "ems.kawasaki.example",
            "ems.kawasaki.example:8441",
            "desk.example:8443",
            "[fd00::1]:8443",
            "[fd00::2]",
            "[fd00::2]:8441",
        ] {
            assert!(public.allows(Some(ok)), "{ok}");
        }
        for no in [
            "localhost:8441",
            "evil.example",
            "ems.kawasaki.example.evil.example",
            "desk.example",
            "[fd00::1]:8443:8443",
        ] {
            assert!(!public.allows(Some(no)), "{no}");
        }
        let wildcard = AllowedHosts::for_listener("0.0.0.0:8441".parse().unwrap(), &[]);
        assert!(wildcard.is_empty(), "0.0.0.0 is nobody's name");
    }
}
