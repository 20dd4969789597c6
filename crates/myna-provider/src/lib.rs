//! `provider`: the national emergency-summary service (stand-in for the emergency viewing of
//! オンライン資格確認等システム). A fire bureau's `ems` server presents the JPKI user-authentication
//! certificate read from a patient's card; the provider validates it, resolves the person, logs
//! the access in the same transaction as the read, and returns the 救急用サマリー.
//!
//! The HTTP contract, with every error code, is in `docs/api.md`.

mod auth;
mod body;
pub mod client;
mod error;
pub mod hospital_read;
pub mod openapi;
pub mod portal;
mod summary;

pub use auth::{BearerTokens, CallerAuth, Callers, ClientCertificates};
pub use error::ApiError;
pub use summary::{SummaryRequestBody, SummaryResponse, ViewerBody};

use axum::Router;
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use myna_domain::alerts::AlertTable;
use myna_pki::TrustAnchor;
use myna_store::ProviderStore;
use std::sync::Arc;

/// Largest request body accepted; a summary request with a 2 KiB certificate is under 4 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Source of "now", replaceable in tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// The calendar date in Japan (UTC+9) at `now`; summary windows count in Japanese days.
pub fn japan_date(now: DateTime<Utc>) -> NaiveDate {
    // JST has no daylight saving time, so a fixed nine hours is exact.
    (now + chrono::Duration::hours(9)).date_naive()
}

pub struct Provider<S, A> {
    pub store: Arc<S>,
    pub auth: A,
    pub anchor: TrustAnchor,
    pub alerts: AlertTable,
    pub clock: Clock,
}

/// For load balancers; no authentication.
#[utoipa::path(
    get,
    path = myna_wire::provider::HEALTHZ_PATH,
    operation_id = "healthz",
    tag = "provider",
    responses((status = 200, description = "The service is up.", body = String, content_type = "text/plain", example = "ok")),
)]
async fn healthz() -> &'static str {
    "ok"
}

/// The provider's HTTP routes.
pub fn router<S: ProviderStore, A: CallerAuth<S>>(provider: Provider<S, A>) -> Router {
    let state = Arc::new(provider);
    Router::new()
        .route(myna_wire::provider::HEALTHZ_PATH, get(healthz))
        .route(
            myna_wire::provider::SUMMARY_PATH,
            post(summary::handle::<S, A>),
        )
        .route(
            myna_wire::provider::HOSPITAL_READ_PATH,
            post(hospital_read::handle::<S, A>),
        )
        .route(
            myna_wire::provider::PORTAL_CHALLENGE_PATH,
            post(portal::challenge::<S, A>),
        )
        .route(
            myna_wire::provider::PORTAL_HISTORY_PATH,
            post(portal::history::<S, A>),
        )
        .layer(axum::Extension(Arc::new(portal::Challenges::new())))
        .with_state(state)
}
