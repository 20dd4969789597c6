//! The portal's client of the provider: a challenge, then the history for the signed challenge.
//! No credential of its own: the card's signature is the credential.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use myna_wire::provider::{
    AccessHistoryRequest, AccessHistoryResponse, PORTAL_CHALLENGE_PATH, PORTAL_HISTORY_PATH,
    PortalChallenge, ProviderErrorBody, ProviderErrorCode,
};
use serde::de::DeserializeOwned;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortalError {
    /// The provider could not be reached or did not answer in time.
    #[error("the provider is unreachable: {0}")]
    Offline(String),
    /// The provider answered with an error.
    #[error("{code}: {message}")]
    Refused {
        code: ProviderErrorCode,
        message: String,
    },
}

#[derive(Clone)]
pub struct PortalClient {
    http: Client<myna_tls::Connector, Full<Bytes>>,
    base: String,
    timeout: Duration,
}

impl PortalClient {
    /// A client of the provider at `base`, trusting what `tls` trusts for `https://`.
    pub fn new(
        base: &str,
        tls: std::sync::Arc<myna_tls::rustls::ClientConfig>,
    ) -> Result<Self, myna_tls::TlsError> {
        myna_tls::check_url(base)?;
        let connector = myna_tls::https_connector_from(tls, Some(Duration::from_secs(5)), None);
        Ok(Self {
            http: Client::builder(TokioExecutor::new()).build(connector),
            base: base.trim_end_matches('/').to_owned(),
            timeout: Duration::from_secs(10),
        })
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: Vec<u8>) -> Result<T, PortalError> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PortalError::Offline(format!("building the request: {e}")))?;
        let work = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| PortalError::Offline(e.to_string()))?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| PortalError::Offline(e.to_string()))?
                .to_bytes();
            Ok::<_, PortalError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| PortalError::Offline("no answer in time".into()))??;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| PortalError::Refused {
                code: ProviderErrorCode::Unknown,
                message: format!("undecodable answer: {e}"),
            });
        }
        Err(match serde_json::from_slice::<ProviderErrorBody>(&bytes) {
            Ok(b) => PortalError::Refused {
                code: b.error.code,
                message: b.error.message,
            },
            Err(_) => PortalError::Refused {
                code: ProviderErrorCode::Unknown,
                message: format!("HTTP {status}"),
            },
        })
    }

    pub async fn challenge(&self) -> Result<PortalChallenge, PortalError> {
        self.post(PORTAL_CHALLENGE_PATH, b"{}".to_vec()).await
    }

    pub async fn history(
        &self,
        request: &AccessHistoryRequest,
    ) -> Result<AccessHistoryResponse, PortalError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| PortalError::Offline(format!("encoding the request: {e}")))?;
        self.post(PORTAL_HISTORY_PATH, body).await
    }
}
