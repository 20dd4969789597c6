//! `POST /v1/hospital-reads`: a bureau reports that the destination hospital's staff read the
//! crew's copy of a summary, so the patient's access history names the hospital too.

use crate::{ApiError, CallerAuth, Provider};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use myna_domain::access::{HospitalRead, check_identifier};
use myna_store::{HospitalReadReport, ProviderStore};
use myna_wire::ErrorBody;
use myna_wire::provider::{HospitalReadBody, HospitalReadResponse, ProviderErrorCode};
use std::sync::Arc;

fn malformed(msg: impl Into<String>) -> ApiError {
    ApiError::MalformedRequest(msg.into())
}

/// Logs the read in the chain of the person the crew's access read, after that access.
#[utoipa::path(
    post,
    path = myna_wire::provider::HOSPITAL_READ_PATH,
    operation_id = "hospital_read",
    tag = "provider",
    request_body(content = HospitalReadBody, content_type = "application/json"),
    security(("organisation" = []), ("organisation_certificate" = [])),
    responses(
        (status = 200, description = "The read is in the access log: the hospital's first read of that access (a later report of the same hospital and access answers the same entry).", body = HospitalReadResponse),
        (status = 400, description = "`malformed_request`: invalid JSON, missing or unknown field, empty or over-long text, an institution code that is not ten digits, a read time more than five minutes before the crew's access or more than seven days after it, a view-log place below 1.", body = ErrorBody<ProviderErrorCode>),
        (status = 401, description = "`unauthenticated`: no, malformed or wrong credential.", body = ErrorBody<ProviderErrorCode>,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"myna-provider\"`"))),
        (status = 404, description = "`unknown_access`: no access of the calling organisation has this `access_id` and `incident_ref` (or it is itself a hospital's read).", body = ErrorBody<ProviderErrorCode>),
        (status = 409, description = "`hospital_read_limit`: the access has reads of five hospitals logged already.", body = ErrorBody<ProviderErrorCode>),
        (status = 413, description = "`payload_too_large`: body over 64 KiB.", body = ErrorBody<ProviderErrorCode>),
        (status = 415, description = "`unsupported_media_type`: not `application/json`.", body = ErrorBody<ProviderErrorCode>),
        (status = 422, description = "`read_time_ahead`: `read_at_ms` is more than five minutes ahead of the provider's clock (the two clocks disagree: try again later).", body = ErrorBody<ProviderErrorCode>),
        (status = 500, description = "`internal`: stored data is inconsistent (details are logged).", body = ErrorBody<ProviderErrorCode>),
        (status = 503, description = "`unavailable`: the database cannot be reached or a commit failed.", body = ErrorBody<ProviderErrorCode>),
    ),
)]
pub async fn handle<S: ProviderStore, A: CallerAuth<S>>(
    State(p): State<Arc<Provider<S, A>>>,
    certificate: Option<axum::Extension<myna_tls::PeerCertificate>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<HospitalReadResponse>, ApiError> {
    let org = p
        .auth
        .authenticate(&p.store, &headers, certificate.as_ref().map(|c| &c.0))
        .await?;
    let req: HospitalReadBody = crate::body::json(&headers, body).await?;
    for (field, value) in [
        ("incident_ref", &req.incident_ref),
        ("institution_code", &req.institution_code),
        ("hospital_name", &req.hospital_name),
        ("staff", &req.staff),
    ] {
        check_identifier(field, value).map_err(|e| malformed(e.to_string()))?;
    }
    if !(req.institution_code.len() == 10
        && req.institution_code.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(malformed("institution_code must be ten digits"));
    }
    if req.ems_view_seq < 1 {
        return Err(malformed("ems_view_seq must be at least 1"));
    }
    let now_ms = (p.clock)().timestamp_millis();
    if req.read_at_ms > now_ms.saturating_add(myna_store::HOSPITAL_READ_SKEW_MS) {
        return Err(ApiError::ReadTimeAhead);
    }
    let report = HospitalReadReport {
        organisation_id: org.id,
        incident_ref: req.incident_ref,
        staff: req.staff,
        at_ms: now_ms,
        read: HospitalRead {
            source_access_id: req.access_id,
            institution_code: req.institution_code,
            hospital_name: req.hospital_name,
            read_at_ms: req.read_at_ms,
            ems_view_seq: req.ems_view_seq,
        },
    };
    let logged = p.store.record_hospital_read(report).await?;
    Ok(Json(HospitalReadResponse {
        access_id: logged.access_id,
    }))
}
