//! API errors: one stable code per failure, documented in docs/api.md.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use myna_pki::CertError;
use myna_store::StoreError;
use myna_wire::provider::{ProviderErrorBody, ProviderErrorCode};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid organisation credential")]
    Unauthenticated,
    #[error("viewer.organisation {0:?} is not the authenticated organisation")]
    ViewerOrganisationMismatch(String),
    #[error("{0}")]
    MalformedRequest(String),
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    #[error(transparent)]
    Certificate(#[from] CertError),
    #[error("certificate serial {serial} was revoked on {revoked_at}")]
    CertificateRevoked { serial: String, revoked_at: String },
    #[error("no insured person is linked to certificate serial {0}")]
    UnknownSerial(String),
    #[error("no access of this organisation has this access_id and incident_ref")]
    UnknownAccess,
    #[error("this access already has the most hospitals' reads the log takes")]
    HospitalReadLimit,
    #[error("read_at_ms is more than five minutes ahead of the provider's clock")]
    ReadTimeAhead,
    #[error(transparent)]
    Challenge(#[from] crate::portal::ChallengeError),
    #[error("the signature does not verify with the certificate's key")]
    SignatureInvalid,
    #[error("service temporarily unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> ProviderErrorCode {
        use ProviderErrorCode as C;
        match self {
            ApiError::Unauthenticated => C::Unauthenticated,
            ApiError::ViewerOrganisationMismatch(_) => C::ViewerOrganisationMismatch,
            ApiError::MalformedRequest(_) => C::MalformedRequest,
            ApiError::PayloadTooLarge(_) => C::PayloadTooLarge,
            ApiError::UnsupportedMediaType => C::UnsupportedMediaType,
            ApiError::Certificate(e) => match e {
                CertError::Malformed(_) => C::CertificateMalformed,
                CertError::Unsupported(_) => C::CertificateUnsupported,
                CertError::Untrusted(_) => C::CertificateUntrusted,
                CertError::Expired(_) => C::CertificateExpired,
                CertError::NotYetValid(_) => C::CertificateNotYetValid,
                CertError::WrongKeyUsage(_) => C::CertificateWrongKeyUsage,
                CertError::Issue(_) => C::Internal,
            },
            ApiError::CertificateRevoked { .. } => C::CertificateRevoked,
            ApiError::UnknownSerial(_) => C::UnknownSerial,
            ApiError::UnknownAccess => C::UnknownAccess,
            ApiError::HospitalReadLimit => C::HospitalReadLimit,
            ApiError::ReadTimeAhead => C::ReadTimeAhead,
            ApiError::Challenge(e) => match e {
                crate::portal::ChallengeError::Invalid => C::ChallengeInvalid,
                crate::portal::ChallengeError::Expired => C::ChallengeExpired,
                crate::portal::ChallengeError::Used => C::ChallengeUsed,
            },
            ApiError::SignatureInvalid => C::SignatureInvalid,
            ApiError::Unavailable(_) => C::Unavailable,
            ApiError::Internal(_) => C::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::ViewerOrganisationMismatch(_) => StatusCode::FORBIDDEN,
            ApiError::MalformedRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Certificate(CertError::Issue(_)) | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::Certificate(_) | ApiError::CertificateRevoked { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::UnknownSerial(_) | ApiError::UnknownAccess => StatusCode::NOT_FOUND,
            ApiError::HospitalReadLimit => StatusCode::CONFLICT,
            ApiError::ReadTimeAhead => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Challenge(_) | ApiError::SignatureInvalid => StatusCode::FORBIDDEN,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownSerial(s) => ApiError::UnknownSerial(s),
            StoreError::Revoked { serial, revoked_at } => {
                ApiError::CertificateRevoked { serial, revoked_at }
            }
            StoreError::UnknownAccess => ApiError::UnknownAccess,
            e @ StoreError::ReadOutOfTime => ApiError::MalformedRequest(e.to_string()),
            StoreError::HospitalReadLimit => ApiError::HospitalReadLimit,
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Corrupt(m)
            | StoreError::OrganisationExists(m)
            | StoreError::UnknownOrganisation(m) => ApiError::Internal(m),
            e @ (StoreError::InvalidRecord { .. }
            | StoreError::ImportRejected { .. }
            | StoreError::InvalidPast(_)) => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Internal details go to the log, not to the caller.
        let message = match &self {
            ApiError::Unavailable(detail) | ApiError::Internal(detail) => {
                tracing::error!(code = self.code().as_str(), %detail, "request failed");
                self.to_string()
            }
            ApiError::Certificate(CertError::Issue(detail)) => {
                tracing::error!(%detail, "certificate handling failed");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let body = ProviderErrorBody::new(self.code(), message);
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"myna-provider\""),
            );
        }
        resp
    }
}
