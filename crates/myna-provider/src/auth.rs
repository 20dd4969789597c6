//! Authentication of the calling organisation: by the client certificate of its TLS connection
//! (mutual TLS, the organisation named by the certificate's common name under the provider's
//! organisation CA), or by a bearer token where the provider is not reachable from other hosts
//! (tests, a loopback deployment).

use crate::ApiError;
use axum::http::{HeaderMap, header};
use myna_store::{Organisation, ProviderStore, hash_secret};
use myna_tls::PeerCertificate;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub trait CallerAuth<S: ProviderStore>: Send + Sync + 'static {
    /// The organisation behind a request: its headers, and the client certificate its TLS
    /// connection presented (already verified against the organisation CA), if any.
    fn authenticate(
        &self,
        store: &S,
        headers: &HeaderMap,
        certificate: Option<&PeerCertificate>,
    ) -> impl Future<Output = Result<Organisation, ApiError>> + Send;
}

/// How long a verified credential is trusted without asking the store again. Disabling an
/// organisation takes effect within this time.
pub const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(5);

/// `Authorization: Bearer <organisation id>.<secret>`; the provider stores only the secret's hash.
/// Verified credentials are remembered for `CREDENTIAL_CACHE_TTL`, keyed by the secret's hash,
/// so a busy bureau does not cost a database read per request.
#[derive(Debug, Default)]
pub struct BearerTokens {
    verified: Mutex<HashMap<(String, String), (Organisation, Instant)>>,
}

impl BearerTokens {
    pub fn new() -> Self {
        Self::default()
    }

    /// The token an organisation presents.
    pub fn token(org_id: &str, secret: &str) -> String {
        format!("{org_id}.{secret}")
    }

    fn cached(&self, key: &(String, String)) -> Option<Organisation> {
        let map = self.verified.lock().ok()?;
        map.get(key)
            .filter(|(_, at)| at.elapsed() < CREDENTIAL_CACHE_TTL)
            .map(|(org, _)| org.clone())
    }

    fn remember(&self, key: (String, String), org: &Organisation) {
        if let Ok(mut map) = self.verified.lock() {
            if map.len() > 10_000 {
                map.retain(|_, (_, at)| at.elapsed() < CREDENTIAL_CACHE_TTL);
            }
            map.insert(key, (org.clone(), Instant::now()));
        }
    }
}

impl<S: ProviderStore> CallerAuth<S> for BearerTokens {
    async fn authenticate(
        &self,
        store: &S,
        headers: &HeaderMap,
        _certificate: Option<&PeerCertificate>,
    ) -> Result<Organisation, ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthenticated)?;
        let token = value
            .strip_prefix("Bearer ")
            .ok_or(ApiError::Unauthenticated)?;
        let (org_id, secret) = token.split_once('.').ok_or(ApiError::Unauthenticated)?;
        if org_id.is_empty() || secret.is_empty() || org_id.len() > 64 || secret.len() > 256 {
            return Err(ApiError::Unauthenticated);
        }
        let key = (org_id.to_owned(), hash_secret(secret));
        if let Some(org) = self.cached(&key) {
            return Ok(org);
        }
        let org = store
            .authenticate(org_id, secret)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        self.remember(key, &org);
        Ok(org)
    }
}

/// Mutual TLS: the organisation is the common name of the client certificate, which the TLS
/// layer verified against the provider's organisation CA; it must be registered and enabled.
/// A certificate whose public key was revoked (`revoke_organisation_certificate`) is refused;
/// the organisation's other keys are not. A bearer token counts for nothing. Lookups are remembered for
/// `CREDENTIAL_CACHE_TTL`, like verified tokens.
#[derive(Debug, Default)]
pub struct ClientCertificates {
    verified: BearerTokens,
}

impl ClientCertificates {
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S: ProviderStore> CallerAuth<S> for ClientCertificates {
    async fn authenticate(
        &self,
        store: &S,
        _headers: &HeaderMap,
        certificate: Option<&PeerCertificate>,
    ) -> Result<Organisation, ApiError> {
        let certificate = certificate.ok_or(ApiError::Unauthenticated)?;
        // The handshake checked the dates, but a kept-alive connection or a resumed session
        // outlives that moment: check them on every request.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let facts = myna_tls::identity::certificate_facts(&certificate.0)
            .ok_or(ApiError::Unauthenticated)?;
        if now_ms < facts.not_before_ms || now_ms >= facts.not_after_ms {
            return Err(ApiError::Unauthenticated);
        }
        let org_id = facts
            .common_name
            .filter(|id| !id.is_empty() && id.len() <= 64)
            .ok_or(ApiError::Unauthenticated)?;
        // Keyed by the certificate's public key, which is also what a revocation names: a
        // re-encoded signature or a second certificate for a revoked key is still refused.
        let key = (org_id.clone(), hex::encode(facts.public_key_sha256));
        if let Some(org) = self.verified.cached(&key) {
            return Ok(org);
        }
        let org = store
            .organisation_for_certificate(&org_id, &key.1)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        self.verified.remember(key, &org);
        Ok(org)
    }
}

/// How a provider authenticates its callers, chosen at start.
#[derive(Debug)]
pub enum Callers {
    Bearer(BearerTokens),
    Certificates(ClientCertificates),
}

impl<S: ProviderStore> CallerAuth<S> for Callers {
    async fn authenticate(
        &self,
        store: &S,
        headers: &HeaderMap,
        certificate: Option<&PeerCertificate>,
    ) -> Result<Organisation, ApiError> {
        match self {
            Callers::Bearer(b) => b.authenticate(store, headers, certificate).await,
            Callers::Certificates(c) => c.authenticate(store, headers, certificate).await,
        }
    }
}
