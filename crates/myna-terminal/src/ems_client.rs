//! The terminal's client of `ems`: its own credential (the client certificate in its TLS
//! configuration, or a bearer token), the crew session in a header, a deadline on every call, and a split between "the link is down" (retry later) and
//! "ems refused" (show the crew why).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use myna_wire::terminal::{
    CREW_SESSION_HEADER, EnrollAccepted, EnrollBody, EnrollPoll, EnrollStatus, ErrorCode, EventAck,
    EventBody, HospitalStatuses, IncidentView, SignInBody, SignedIn, SignedOut, SummaryBody,
    TerminalErrorBody, TerminalInfo, TerminalSummary, route,
};
use serde::de::DeserializeOwned;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// ems could not be reached or did not answer in time: the link is down.
    Offline(String),
    /// ems answered with an error.
    Refused {
        status: u16,
        code: ErrorCode,
        message: String,
    },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Offline(e) => write!(f, "ems unreachable: {e}"),
            CallError::Refused { code, message, .. } => write!(f, "{code}: {message}"),
        }
    }
}

#[derive(Clone)]
pub struct EmsClient {
    http: Client<myna_tls::Connector, Full<Bytes>>,
    base: String,
    /// The bearer token; `None` when the tablet proves itself by its client certificate.
    token: Option<String>,
    /// Deadline of one call (the summary gets the provider's time on top).
    pub timeout: Duration,
}

impl EmsClient {
    /// A client of `base` with the tablet's credential; `tls` says whom it trusts for
    /// `https://` (the platform's roots, or the bureau's CA).
    pub fn new(
        base: &str,
        token: &str,
        tls: std::sync::Arc<myna_tls::rustls::ClientConfig>,
    ) -> Result<Self, myna_tls::TlsError> {
        Self::new_from(base, token, tls, None)
    }

    /// `new`, with every connection leaving from `local` (the load benchmark's tablets).
    pub fn new_from(
        base: &str,
        token: &str,
        tls: std::sync::Arc<myna_tls::rustls::ClientConfig>,
        local: Option<std::net::IpAddr>,
    ) -> Result<Self, myna_tls::TlsError> {
        let mut client = Self::connect(base, tls, local)?;
        client.token = Some(token.to_owned());
        Ok(client)
    }

    /// A client whose TLS configuration carries the tablet's client certificate (mutual TLS),
    /// or nothing yet (enrollment).
    pub fn without_bearer(
        base: &str,
        tls: std::sync::Arc<myna_tls::rustls::ClientConfig>,
    ) -> Result<Self, myna_tls::TlsError> {
        Self::connect(base, tls, None)
    }

    fn connect(
        base: &str,
        tls: std::sync::Arc<myna_tls::rustls::ClientConfig>,
        local: Option<std::net::IpAddr>,
    ) -> Result<Self, myna_tls::TlsError> {
        myna_tls::check_url(base)?;
        let connector = myna_tls::https_connector_from(tls, Some(Duration::from_secs(3)), local);
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: None,
            timeout: Duration::from_secs(5),
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        session: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>, CallError> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            b = b.header("authorization", format!("Bearer {token}"));
        }
        if let Some(s) = session {
            b = b.header(CREW_SESSION_HEADER, s);
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        b.body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| CallError::Offline(format!("building request: {e}")))
    }

    async fn send(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, CallError> {
        tokio::time::timeout(timeout, self.http.request(req))
            .await
            .map_err(|_| CallError::Offline("no answer in time".into()))?
            .map_err(|e| CallError::Offline(e.to_string()))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        session: Option<&str>,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let req = self.request(method, path, session, body)?;
        let work = async {
            let resp = self.send(req, timeout).await?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| CallError::Offline(e.to_string()))?
                .to_bytes();
            Ok::<_, CallError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| CallError::Offline("no answer in time".into()))??;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| CallError::Refused {
                status: status.as_u16(),
                code: ErrorCode::Unknown,
                message: format!("undecodable answer: {e}"),
            });
        }
        Err(refusal(status, &bytes))
    }

    fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, CallError> {
        serde_json::to_vec(v).map_err(|e| CallError::Offline(format!("encoding: {e}")))
    }

    /// Files an enrollment request (no credential needed).
    pub async fn enroll(&self, body: &EnrollBody) -> Result<EnrollAccepted, CallError> {
        let body = Self::json(body)?;
        self.call(Method::POST, route::ENROLL, None, Some(body), self.timeout)
            .await
    }

    /// Where an enrollment stands.
    pub async fn enroll_status(&self, poll_token: &str) -> Result<EnrollStatus, CallError> {
        let body = Self::json(&EnrollPoll {
            poll_token: poll_token.to_owned(),
        })?;
        self.call(
            Method::POST,
            route::ENROLL_STATUS,
            None,
            Some(body),
            self.timeout,
        )
        .await
    }

    pub async fn whoami(&self) -> Result<TerminalInfo, CallError> {
        self.call(Method::GET, route::WHOAMI, None, None, self.timeout)
            .await
    }

    pub async fn sign_in(&self, login: &str, password: &str) -> Result<SignedIn, CallError> {
        let body = Self::json(&SignInBody {
            login: login.to_owned(),
            password: password.to_owned(),
        })?;
        self.call(Method::POST, route::SIGN_IN, None, Some(body), self.timeout)
            .await
    }

    pub async fn sign_out(&self, session: &str) -> Result<SignedOut, CallError> {
        self.call(
            Method::POST,
            route::SIGN_OUT,
            Some(session),
            Some(b"{}".to_vec()),
            self.timeout,
        )
        .await
    }

    pub async fn incidents(&self, session: &str) -> Result<Vec<IncidentView>, CallError> {
        self.call(
            Method::GET,
            route::INCIDENTS,
            Some(session),
            None,
            self.timeout,
        )
        .await
    }

    pub async fn hospital_statuses(&self, session: &str) -> Result<HospitalStatuses, CallError> {
        self.call(
            Method::GET,
            route::HOSPITALS,
            Some(session),
            None,
            self.timeout,
        )
        .await
    }

    pub async fn incident(&self, session: &str, id: i64) -> Result<IncidentView, CallError> {
        self.call(
            Method::GET,
            &route::incident(id),
            Some(session),
            None,
            self.timeout,
        )
        .await
    }

    pub async fn post_event(
        &self,
        session: &str,
        incident: i64,
        body: &EventBody,
    ) -> Result<EventAck, CallError> {
        let body = Self::json(body)?;
        self.call(
            Method::POST,
            &route::events(incident),
            Some(session),
            Some(body),
            self.timeout,
        )
        .await
    }

    pub async fn summary(
        &self,
        session: &str,
        incident: i64,
        body: &SummaryBody,
    ) -> Result<TerminalSummary, CallError> {
        let body = Self::json(body)?;
        self.call(
            Method::POST,
            &route::summary(incident),
            Some(session),
            Some(body),
            self.timeout * 3,
        )
        .await
    }

    /// Opens the push stream; the caller reads server-sent events from the body.
    pub async fn stream(&self, session: &str) -> Result<Incoming, CallError> {
        let req = self.request(Method::GET, route::STREAM, Some(session), None)?;
        let resp = self.send(req, self.timeout).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(refusal(status, &bytes));
        }
        Ok(resp.into_body())
    }
}

/// What a non-success answer means: ems's own error body is a refusal with its code; any other
/// body from a 5xx or 429 is a proxy, gateway or load balancer, so the link failed and the call
/// is retried (a queued tap must not be dropped).
fn refusal(status: StatusCode, bytes: &[u8]) -> CallError {
    match serde_json::from_slice::<TerminalErrorBody>(bytes) {
        Ok(b) => CallError::Refused {
            status: status.as_u16(),
            code: b.error.code,
            message: b.error.message,
        },
        // A proxy's or the server's own plain answer (busy, too slow): retry, never drop.
        Err(_)
            if status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT =>
        {
            CallError::Offline(format!("the link answered {status}"))
        }
        Err(_) => CallError::Refused {
            status: status.as_u16(),
            code: ErrorCode::Unknown,
            message: String::from_utf8_lossy(bytes).into_owned(),
        },
    }
}

/// Splits a server-sent-event byte stream into `(event, data)` pairs.
#[derive(Default)]
pub struct SseParser {
    buf: String,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        self.buf.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let block: String = self.buf.drain(..end + 2).collect();
            let mut event = String::from("message");
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.trim_start().to_owned());
                }
            }
            // Comment-only blocks (keep-alives) carry no event.
            if block.lines().any(|l| !l.starts_with(':') && !l.is_empty()) {
                out.push((event, data.join("\n")));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: incid").is_empty());
        let got = p.push(b"ent\ndata: 7\n\n:keep-alive\n\nevent: resync\ndata: x\n\n");
        assert_eq!(
            got,
            vec![
                ("incident".to_owned(), "7".to_owned()),
                ("resync".to_owned(), "x".to_owned())
            ]
        );
    }

    #[test]
    fn a_plain_busy_or_slow_answer_is_retried_and_a_typed_refusal_is_not() {
        for status in [
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::BAD_GATEWAY,
        ] {
            assert!(
                matches!(
                    refusal(status, b"busy; retry shortly"),
                    CallError::Offline(_)
                ),
                "{status}"
            );
        }
        let typed = br#"{"error":{"code":"wrong_team","message":"x"}}"#;
        assert!(matches!(
            refusal(StatusCode::FORBIDDEN, typed),
            CallError::Refused {
                code: ErrorCode::WrongTeam,
                ..
            }
        ));
    }
}
