//! API errors: one stable code per failure, documented in docs/api.md.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use myna_pki::CertError;
use myna_store::StoreError;
use serde::Serialize;

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
    #[error("service temporarily unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::ViewerOrganisationMismatch(_) => "viewer_organisation_mismatch",
            ApiError::MalformedRequest(_) => "malformed_request",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Certificate(e) => match e {
                CertError::Malformed(_) => "certificate_malformed",
                CertError::Unsupported(_) => "certificate_unsupported",
                CertError::Untrusted(_) => "certificate_untrusted",
                CertError::Expired(_) => "certificate_expired",
                CertError::NotYetValid(_) => "certificate_not_yet_valid",
                CertError::WrongKeyUsage(_) => "certificate_wrong_key_usage",
                CertError::Issue(_) => "internal",
            },
            ApiError::CertificateRevoked { .. } => "certificate_revoked",
            ApiError::UnknownSerial(_) => "unknown_serial",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
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
            ApiError::UnknownSerial(_) => StatusCode::NOT_FOUND,
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
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Corrupt(m) | StoreError::OrganisationExists(m) => ApiError::Internal(m),
            e @ StoreError::InvalidRecord { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Internal details go to the log, not to the caller.
        let message = match &self {
            ApiError::Unavailable(detail) | ApiError::Internal(detail) => {
                tracing::error!(code = self.code(), %detail, "request failed");
                self.to_string()
            }
            ApiError::Certificate(CertError::Issue(detail)) => {
                tracing::error!(%detail, "certificate handling failed");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
            },
        };
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
