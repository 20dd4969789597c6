//! What the JSON routes share: reading a request body, and the size of a certificate in one.

use crate::{ApiError, MAX_BODY_BYTES};
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, header};

/// A standard-base64 field of a request, at most `max` characters, decoded.
pub(crate) fn base64_field(field: &str, value: &str, max: usize) -> Result<Vec<u8>, ApiError> {
    use base64::Engine;
    if value.len() > max {
        return Err(ApiError::MalformedRequest(format!("{field} is too long")));
    }
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|e| ApiError::MalformedRequest(format!("{field} is not base64: {e}")))
}

/// Largest base64 certificate accepted (JPKI certificates are about 1.6 KiB of DER).
pub(crate) const MAX_CERT_B64: usize = 16 * 1024;

/// A JSON request body: `application/json`, at most `MAX_BODY_BYTES`, into `T`.
pub(crate) async fn json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
        let over_limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if over_limit {
            ApiError::PayloadTooLarge(MAX_BODY_BYTES)
        } else {
            ApiError::MalformedRequest(format!("could not read the request body: {e}"))
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::MalformedRequest(format!("request body: {e}")))
}
