//! Authentication of the calling organisation. Kept behind a trait so mutual TLS can replace
//! bearer tokens without touching the handlers.

use crate::ApiError;
use axum::http::{HeaderMap, header};
use myna_store::{Organisation, ProviderStore, hash_secret};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub trait CallerAuth<S: ProviderStore>: Send + Sync + 'static {
    fn authenticate(
        &self,
        store: &S,
        headers: &HeaderMap,
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
    async fn authenticate(&self, store: &S, headers: &HeaderMap) -> Result<Organisation, ApiError> {
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
