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

/// The report a body makes, for the authenticated `organisation_id`, received at `now_ms`;
/// refused if a field is not of its form, or the read is dated ahead of the provider's clock.
/// Whether the access exists, and the read's date against it, are the store's to check.
pub fn report_of(
    organisation_id: String,
    req: HospitalReadBody,
    now_ms: i64,
) -> Result<HospitalReadReport, ApiError> {
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
    if req.read_at_ms > now_ms.saturating_add(myna_store::HOSPITAL_READ_SKEW_MS) {
        return Err(ApiError::ReadTimeAhead);
    }
    Ok(HospitalReadReport {
        organisation_id,
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
    })
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
    let report = report_of(org.id, req, (p.clock)().timestamp_millis())?;
    let logged = p.store.record_hospital_read(report).await?;
    Ok(Json(HospitalReadResponse {
        access_id: logged.access_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use myna_domain::access::{AccessEntry, Consent, Purpose, Viewer};
    use myna_domain::person::PersonId;
    use myna_domain::summary::View;
    use myna_store::{HOSPITAL_READ_SKEW_MS, HOSPITAL_READ_WITHIN_MS, hospital_read_entry};
    use proptest::prelude::*;

    const NOW: i64 = 1_795_000_000_000;

    fn body(code: String, read_at_ms: i64, ems_view_seq: i64) -> HospitalReadBody {
        HospitalReadBody {
            access_id: 7,
            incident_ref: "20261127-0042".into(),
            institution_code: code,
            hospital_name: "川崎市立川崎病院".into(),
            staff: "er-kawasaki-municipal".into(),
            read_at_ms,
            ems_view_seq,
        }
    }

    fn crew_access(at_ms: i64) -> AccessEntry {
        AccessEntry {
            at_ms,
            organisation_id: "kawasaki-fd".into(),
            viewer: Viewer {
                organisation: "kawasaki-fd".into(),
                team: "中原救急1".into(),
                crew_member: "crew10".into(),
            },
            incident_ref: "20261127-0042".into(),
            person_id: PersonId(5),
            cert_serial: "01AF00000001".into(),
            purpose: Purpose::EmergencyCare,
            consent: Consent::Obtained,
            view: View::Summary,
            hospital_read: None,
            access_id: None,
        }
    }

    proptest! {
        /// A report passes the form only with a ten-digit code, a place of at least 1 and a
        /// date not ahead of the clock; the entry it makes is dated within the copy's life,
        /// never before the crew's access, and names the staff member, not the crew's.
        #[test]
        fn only_a_well_formed_report_dated_within_the_copys_life_is_logged(
            code in "[0-9]{10}|[0-9a-z-]{0,12}",
            read_offset in -10_000_000_000i64..10_000_000_000i64,
            access_offset in -10_000_000_000i64..0,
            ems_view_seq in -2i64..3,
        ) {
            let read_at_ms = NOW + read_offset;
            let formed = report_of("kawasaki-fd".into(), body(code.clone(), read_at_ms, ems_view_seq), NOW);
            let well_formed = code.len() == 10 && code.bytes().all(|b| b.is_ascii_digit()) && ems_view_seq >= 1;
            match (&formed, well_formed) {
                (Err(ApiError::MalformedRequest(_)), false) => {}
                (Err(ApiError::ReadTimeAhead), true) => {
                    prop_assert!(read_at_ms > NOW + HOSPITAL_READ_SKEW_MS);
                }
                (Ok(_), true) => prop_assert!(read_at_ms <= NOW + HOSPITAL_READ_SKEW_MS),
                (other, _) => prop_assert!(false, "{code:?} {ems_view_seq}: {other:?}"),
            }
            if let Ok(report) = formed {
                let source = crew_access(NOW + access_offset);
                let after = read_at_ms - source.at_ms;
                match hospital_read_entry(&source, &report) {
                    Ok(entry) => {
                        prop_assert!((-HOSPITAL_READ_SKEW_MS..=HOSPITAL_READ_WITHIN_MS).contains(&after));
                        let read_at = entry.hospital_read.as_ref().map(|r| r.read_at_ms);
                        prop_assert!(read_at.is_some_and(|t| t >= source.at_ms), "{read_at:?}");
                        prop_assert_eq!(&entry.viewer.crew_member, "er-kawasaki-municipal");
                        prop_assert_eq!(entry.person_id, source.person_id);
                        prop_assert_eq!(entry.at_ms, NOW);
                    }
                    Err(_) => prop_assert!(!(-HOSPITAL_READ_SKEW_MS..=HOSPITAL_READ_WITHIN_MS).contains(&after)),
                }
            }
        }
    }
}
