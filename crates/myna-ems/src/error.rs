//! Every way an `ems` request is refused, with one stable code each (the terminal maps codes to
//! crew messages).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use myna_domain::incident::IncidentError;
use myna_store::StoreError;
use myna_store::ems::AppendError;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum EmsError {
    #[error("the terminal credential is missing or unknown")]
    TerminalUnknown,
    #[error("this terminal was revoked by the bureau")]
    TerminalRevoked,
    #[error("no crew member is signed in on this terminal")]
    CrewSignedOut,
    #[error("wrong login or password")]
    BadCredentials,
    #[error("this account may not do that")]
    Forbidden,
    #[error("no such incident")]
    IncidentNotFound,
    #[error("{0}")]
    Rule(IncidentError),
    #[error("idempotency key {0:?} was already used for a different event")]
    KeyReused(String),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("no insured person is linked to this card")]
    PersonNotFound,
    #[error("the provider refused the card's certificate: {0}")]
    CardRejected(String),
    #[error("the provider refused the request: {code}: {message}")]
    ProviderRefused { code: String, message: String },
    #[error("the provider could not be reached: {0}")]
    ProviderUnavailable(String),
    #[error("storage is unavailable: {0}")]
    Store(StoreError),
}

impl From<StoreError> for EmsError {
    fn from(e: StoreError) -> Self {
        EmsError::Store(e)
    }
}

impl From<AppendError> for EmsError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Store(s) => EmsError::Store(s),
            AppendError::Rule(r) => EmsError::Rule(r),
            AppendError::NotFound => EmsError::IncidentNotFound,
            AppendError::KeyReused(k) => EmsError::KeyReused(k),
        }
    }
}

fn rule_code(e: &IncidentError) -> &'static str {
    match e {
        IncidentError::Closed => "incident_closed",
        IncidentError::NotCreatedFirst => "not_created_first",
        IncidentError::NotAssigned => "not_assigned",
        IncidentError::WrongTeam => "wrong_team",
        IncidentError::PhaseRepeated(_) => "phase_repeated",
        IncidentError::PhaseOutOfOrder { .. } => "phase_out_of_order",
        IncidentError::NotACrewPhase(_) => "not_a_crew_phase",
        IncidentError::NoConsent => "no_consent",
        IncidentError::IdentityNotConfirmed => "identity_not_confirmed",
        IncidentError::WindowPassed => "window_passed",
        IncidentError::OutcomeRepeated => "outcome_repeated",
    }
}

impl EmsError {
    pub fn code(&self) -> &'static str {
        match self {
            EmsError::TerminalUnknown => "terminal_unknown",
            EmsError::TerminalRevoked => "terminal_revoked",
            EmsError::CrewSignedOut => "crew_signed_out",
            EmsError::BadCredentials => "bad_credentials",
            EmsError::Forbidden => "forbidden",
            EmsError::IncidentNotFound => "incident_not_found",
            EmsError::Rule(r) => rule_code(r),
            EmsError::KeyReused(_) => "idempotency_key_reused",
            EmsError::Malformed(_) => "malformed_request",
            EmsError::PersonNotFound => "person_not_found",
            EmsError::CardRejected(_) => "card_rejected",
            EmsError::ProviderRefused { .. } => "provider_refused",
            EmsError::ProviderUnavailable(_) => "provider_unavailable",
            EmsError::Store(_) => "storage_unavailable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            EmsError::TerminalUnknown
            | EmsError::TerminalRevoked
            | EmsError::CrewSignedOut
            | EmsError::BadCredentials => StatusCode::UNAUTHORIZED,
            EmsError::Forbidden | EmsError::Rule(IncidentError::WrongTeam) => StatusCode::FORBIDDEN,
            EmsError::IncidentNotFound | EmsError::PersonNotFound => StatusCode::NOT_FOUND,
            EmsError::Rule(_) | EmsError::KeyReused(_) => StatusCode::CONFLICT,
            EmsError::CardRejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            EmsError::Malformed(_) => StatusCode::BAD_REQUEST,
            EmsError::ProviderRefused { .. } => StatusCode::BAD_GATEWAY,
            EmsError::ProviderUnavailable(_) | EmsError::Store(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

/// The JSON error body: `{"error": {"code": …, "message": …}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl IntoResponse for EmsError {
    fn into_response(self) -> Response {
        if matches!(self, EmsError::Store(_) | EmsError::ProviderUnavailable(_)) {
            tracing::warn!(error = %self, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
            },
        };
        (self.status(), Json(body)).into_response()
    }
}
