//! Authentication of the calling organisation. Kept behind a trait so mutual TLS can replace
//! bearer tokens without touching the handlers.

use crate::ApiError;
use axum::http::{HeaderMap, header};
use myna_store::{Organisation, ProviderStore};
use std::future::Future;

pub trait CallerAuth<S: ProviderStore>: Send + Sync + 'static {
    fn authenticate(
        &self,
        store: &S,
        headers: &HeaderMap,
    ) -> impl Future<Output = Result<Organisation, ApiError>> + Send;
}

/// `Authorization: Bearer <organisation id>.<secret>`; the provider stores only the secret's hash.
#[derive(Debug, Clone, Copy, Default)]
pub struct BearerTokens;

impl BearerTokens {
    /// The token an organisation presents.
    pub fn token(org_id: &str, secret: &str) -> String {
        format!("{org_id}.{secret}")
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
        store
            .authenticate(org_id, secret)
            .await?
            .ok_or(ApiError::Unauthenticated)
    }
}
