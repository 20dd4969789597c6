//! The HTTP client of the provider API, used by `ems`, `provider query`, the demo and benchmarks.

use crate::{SummaryRequestBody, SummaryResponse, ViewerBody};
use anyhow::{Context, Result};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use myna_domain::access::Consent;
use myna_domain::summary::View;
use myna_wire::provider::{
    HospitalReadBody, HospitalReadResponse, ProviderErrorBody, ProviderErrorCode,
};

#[derive(Clone)]
pub struct ProviderClient {
    http: Client<myna_tls::Connector, Full<Bytes>>,
    base: String,
    /// The bearer token; `None` when the TLS configuration carries the organisation's client
    /// certificate.
    token: Option<String>,
}

/// Either the provider's answer or its error body.
pub enum Answer<T> {
    Ok(T),
    Refused {
        status: StatusCode,
        code: ProviderErrorCode,
        message: String,
    },
}

impl<T> Answer<T> {
    /// The same refusal, or `f` of the answer.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        match self {
            Answer::Ok(t) => Answer::Ok(f(t)),
            Answer::Refused {
                status,
                code,
                message,
            } => Answer::Refused {
                status,
                code,
                message,
            },
        }
    }
}

/// Either the summary or the provider's error body.
pub type SummaryOutcome = Answer<Box<SummaryResponse>>;

impl ProviderClient {
    /// A client that trusts the platform's certificate authorities for `https://` URLs.
    pub fn new(base: &str, token: &str) -> Result<Self> {
        Self::with_tls(base, token, myna_tls::platform_client_config()?)
    }

    /// A client with a bearer token and its own TLS configuration (a private CA).
    pub fn with_tls(
        base: &str,
        token: &str,
        tls: std::sync::Arc<myna_tls::rustls::ClientConfig>,
    ) -> Result<Self> {
        let mut client = Self::with_client_certificate(base, tls)?;
        client.token = Some(token.to_owned());
        Ok(client)
    }

    /// A client whose TLS configuration presents the organisation's client certificate
    /// (mutual TLS); no bearer token is sent.
    pub fn with_client_certificate(
        base: &str,
        tls: std::sync::Arc<myna_tls::rustls::ClientConfig>,
    ) -> Result<Self> {
        myna_tls::check_url(base)?;
        let connector = myna_tls::https_connector(tls, None);
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build(connector);
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: None,
        })
    }

    pub fn summary_body(
        cert_der: &[u8],
        consent: Consent,
        incident_ref: &str,
        viewer: ViewerBody,
    ) -> SummaryRequestBody {
        SummaryRequestBody {
            certificate: base64::engine::general_purpose::STANDARD.encode(cert_der),
            purpose: "emergency_care".into(),
            consent,
            incident_ref: incident_ref.into(),
            viewer,
        }
    }

    pub fn summary_path(view: View) -> &'static str {
        myna_wire::provider::summary_path(view)
    }

    /// Sends a prepared JSON body; returns status and body bytes.
    pub async fn post_json(&self, path: &str, body: Bytes) -> Result<(StatusCode, Bytes)> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = req.body(Full::new(body))?;
        self.send(req).await
    }

    pub async fn get(&self, path: &str) -> Result<(StatusCode, Bytes)> {
        let req = Request::builder()
            .uri(format!("{}{path}", self.base))
            .body(Full::new(Bytes::new()))?;
        self.send(req).await
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes)> {
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let resp = self
            .http
            .request(req)
            .await
            .with_context(|| format!("{method} {uri}"))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }

    pub async fn summary(&self, body: &SummaryRequestBody, view: View) -> Result<SummaryOutcome> {
        Ok(self
            .call(Self::summary_path(view), body)
            .await?
            .map(Box::new))
    }

    /// Reports a hospital's read of a crew's copy (`POST /v1/hospital-reads`).
    pub async fn hospital_read(
        &self,
        body: &HospitalReadBody,
    ) -> Result<Answer<HospitalReadResponse>> {
        self.call(myna_wire::provider::HOSPITAL_READ_PATH, body)
            .await
    }

    /// Posts `body` as JSON and decodes the answer or the error body.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<Answer<T>> {
        let (status, bytes) = self
            .post_json(path, Bytes::from(serde_json::to_vec(body)?))
            .await?;
        if status.is_success() {
            return Ok(Answer::Ok(
                serde_json::from_slice(&bytes).with_context(|| format!("decoding {path}"))?,
            ));
        }
        let (code, message) = match serde_json::from_slice::<ProviderErrorBody>(&bytes) {
            Ok(b) => (b.error.code, b.error.message),
            Err(_) => (
                ProviderErrorCode::Unknown,
                String::from_utf8_lossy(&bytes).into_owned(),
            ),
        };
        Ok(Answer::Refused {
            status,
            code,
            message,
        })
    }
}
