//! `POST /v1/emergency-summary`.

use crate::{ApiError, CallerAuth, Provider, japan_date};
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use myna_domain::access::{AccessEntry, Purpose, Viewer, check_identifier};
use myna_domain::person::PersonId;
use myna_domain::summary::{View, build_summary};
use myna_store::{AccessRequest, ProviderStore};
pub use myna_wire::provider::{SummaryRequestBody, SummaryResponse, ViewerBody};
use myna_wire::{ErrorBody, provider::ProviderErrorCode};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub struct ViewQuery {
    view: Option<String>,
}

fn malformed(msg: impl Into<String>) -> ApiError {
    ApiError::MalformedRequest(msg.into())
}

/// The emergency summary for the card's certificate, logged in the access log before it is
/// sent.
#[utoipa::path(
    post,
    path = myna_wire::provider::SUMMARY_PATH,
    operation_id = "emergency_summary",
    tag = "provider",
    params(("view" = Option<View>, Query, description = "`summary` (救急用サマリー, the default) or `full` (全量版)")),
    request_body(content = SummaryRequestBody, content_type = "application/json"),
    security(("organisation" = []), ("organisation_certificate" = [])),
    responses(
        (status = 200, description = "The summary; its access is in the access log.", body = SummaryResponse),
        (status = 400, description = "`malformed_request`: invalid JSON, missing or unknown field, bad base64, unknown purpose or consent, empty or over-long identifier, bad `view`.", body = ErrorBody<ProviderErrorCode>),
        (status = 401, description = "`unauthenticated`: no, malformed or wrong credential.", body = ErrorBody<ProviderErrorCode>,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"myna-provider\"`"))),
        (status = 403, description = "`viewer_organisation_mismatch`.", body = ErrorBody<ProviderErrorCode>),
        (status = 404, description = "`unknown_serial`: no insured person is linked to the certificate.", body = ErrorBody<ProviderErrorCode>),
        (status = 413, description = "`payload_too_large`: body over 64 KiB.", body = ErrorBody<ProviderErrorCode>),
        (status = 415, description = "`unsupported_media_type`: not `application/json`.", body = ErrorBody<ProviderErrorCode>),
        (status = 422, description = "The certificate was refused (`certificate_*`).", body = ErrorBody<ProviderErrorCode>),
        (status = 500, description = "`internal`: stored data is inconsistent (details are logged).", body = ErrorBody<ProviderErrorCode>),
        (status = 503, description = "`unavailable`: the database cannot be reached or a commit failed.", body = ErrorBody<ProviderErrorCode>),
    ),
)]
pub async fn handle<S: ProviderStore, A: CallerAuth<S>>(
    State(p): State<Arc<Provider<S, A>>>,
    query: Result<Query<ViewQuery>, axum::extract::rejection::QueryRejection>,
    certificate: Option<axum::Extension<myna_tls::PeerCertificate>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SummaryResponse>, ApiError> {
    let org = p
        .auth
        .authenticate(&p.store, &headers, certificate.as_ref().map(|c| &c.0))
        .await?;
    let view = match query
        .map_err(|e| malformed(format!("query string: {e}")))?
        .0
        .view
        .as_deref()
    {
        None | Some("summary") => View::Summary,
        Some("full") => View::Full,
        Some(other) => {
            return Err(malformed(format!(
                "view must be summary or full, not {other:?}"
            )));
        }
    };
    let req: SummaryRequestBody = crate::body::json(&headers, body).await?;

    if Purpose::parse(&req.purpose).is_none() {
        return Err(malformed(format!(
            "purpose must be emergency_care, not {:?}",
            req.purpose
        )));
    }
    check_identifier("incident_ref", &req.incident_ref).map_err(|e| malformed(e.to_string()))?;
    check_identifier("viewer.organisation", &req.viewer.organisation)
        .map_err(|e| malformed(e.to_string()))?;
    check_identifier("viewer.team", &req.viewer.team).map_err(|e| malformed(e.to_string()))?;
    check_identifier("viewer.crew_member", &req.viewer.crew_member)
        .map_err(|e| malformed(e.to_string()))?;
    if req.viewer.organisation != org.id {
        return Err(ApiError::ViewerOrganisationMismatch(
            req.viewer.organisation,
        ));
    }
    let der =
        crate::body::base64_field("certificate", &req.certificate, crate::body::MAX_CERT_B64)?;

    let now = (p.clock)();
    let cert = p.anchor.validate_auth_cert(&der, now)?;
    let today = japan_date(now);
    let granted = p
        .store
        .access_records(AccessRequest {
            serial_hex: cert.serial_hex.clone(),
            view,
            today,
            entry: AccessEntry {
                at_ms: now.timestamp_millis(),
                organisation_id: org.id,
                viewer: Viewer {
                    organisation: req.viewer.organisation,
                    team: req.viewer.team,
                    crew_member: req.viewer.crew_member,
                },
                incident_ref: req.incident_ref,
                person_id: PersonId(0),
                cert_serial: cert.serial_hex,
                purpose: Purpose::EmergencyCare,
                consent: req.consent,
                view,
                hospital_read: None,
                access_id: None,
            },
        })
        .await?;
    let summary = build_summary(
        &granted.person,
        &granted.records,
        view,
        today,
        granted.claims_through,
        &p.alerts,
    );
    Ok(Json(SummaryResponse {
        access_id: granted.access_id,
        summary,
    }))
}
