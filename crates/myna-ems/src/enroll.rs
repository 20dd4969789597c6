//! 端末登録 (terminal enrollment): how a tablet gets the client certificate it proves itself with.
//!
//! 1. An admin of the bureau opens an invitation for a team (admin page or `ems terminal
//!    invite`) and hands its one-time secret to the crew setting up the tablet.
//! 2. The tablet makes a key (it never leaves the tablet) and posts a signing request with the
//!    invitation to `route::ENROLL`; the invitation is used up. The tablet shows the request's
//!    comparison code, computed from its own key.
//! 3. The admin sees the request on the admin page (or `ems terminal pending`), compares the
//!    code with the tablet's and approves. ems issues the certificate from the bureau's device
//!    CA, taking only the request's public key, and registers the terminal for the
//!    invitation's team, bound to that certificate's hash, in one transaction.
//! 4. The tablet collects the certificate at `route::ENROLL_STATUS` with its poll token.
//!
//! Without an invitation nothing is filed, so nobody can fill the admin's list or file a
//! look-alike request (a key whose code matches the real one's takes minutes to find).
//!
//! Revoking the terminal refuses its next request and ends its push stream.

use crate::Ems;
use crate::api::parse;
use crate::error::EmsError;
use crate::sign_in::ClientIp;
use crate::wire::route;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use myna_store::ems::{
    Bureau, EmsStore, EnrollmentId, EnrollmentLimits, EnrollmentState, Filing, IssuedCertificate,
    NewEnrollment, NewInvite, TeamId, TerminalId,
};
use myna_store::hash_secret;
use myna_tls::identity::{ClientSubject, check_request};
use myna_wire::ErrorBody;
use myna_wire::terminal::{EnrollAccepted, EnrollBody, EnrollPoll, EnrollStatus, ErrorCode};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The longest label an admin will read.
const MAX_LABEL_CHARS: usize = 64;

/// The bureau's device CA: the certificate tablets' client certificates chain to, and its key,
/// with which ems signs approved requests.
#[derive(Clone)]
pub struct DeviceCa {
    pub cert_pem: String,
    key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for DeviceCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCa").finish_non_exhaustive()
    }
}

impl DeviceCa {
    pub fn new(cert_pem: String, key_pem: String) -> Self {
        DeviceCa {
            cert_pem,
            key_pem: Zeroizing::new(key_pem),
        }
    }
}

pub fn routes<S: EmsStore>() -> Router<Arc<Ems<S>>> {
    Router::new()
        .route(route::ENROLL, post(request::<S>))
        .route(route::ENROLL_STATUS, post(status::<S>))
}

/// Characters that change how the text around them reads without showing themselves:
/// controls, bidirectional overrides and isolates, zero-width and invisible formatting, line
/// and paragraph separators.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}')
}

/// A label an admin can read as it is: 1 to 64 characters, none of them invisible.
fn check_label(label: &str) -> Result<String, EmsError> {
    let label = label.trim();
    let n = label.chars().count();
    if n == 0 || n > MAX_LABEL_CHARS || label.chars().any(is_invisible) {
        return Err(EmsError::Malformed(format!(
            "the label must be 1 to {MAX_LABEL_CHARS} visible characters"
        )));
    }
    Ok(label.to_owned())
}

/// How long an invitation stays open.
pub const INVITE_VALID_MS: i64 = 24 * 3600 * 1000;

/// Opens an invitation for `team` of `bureau`; returns its one-time secret (shown once), or
/// None if the team is not the bureau's.
pub async fn invite<S: EmsStore>(
    store: &S,
    bureau: &Bureau,
    team: TeamId,
    created_by: &str,
    now_ms: i64,
) -> Result<Option<String>, EmsError> {
    let secret = myna_web::random_token();
    let opened = store
        .create_invite(
            bureau.id,
            NewInvite {
                team,
                secret_hash: hash_secret(&secret),
                expires_ms: now_ms.saturating_add(INVITE_VALID_MS),
                created_by: created_by.to_owned(),
            },
            now_ms,
        )
        .await?;
    Ok(opened.map(|_| secret))
}

#[utoipa::path(
    post,
    path = route::ENROLL,
    operation_id = "enroll",
    tag = "enrollment",
    request_body(content = EnrollBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Filed: the tablet shows `code` (it computes the same from its key) and polls with `poll_token`.", body = EnrollAccepted),
        (status = 400, description = "`malformed_request` (the body, the label) or `certificate_request_invalid`.", body = ErrorBody<ErrorCode>),
        (status = 403, description = "`invitation_invalid`: no open invitation of the bureau has that secret.", body = ErrorBody<ErrorCode>),
        (status = 404, description = "`unknown_bureau`, or `enrollment_unavailable` (this ems has no device CA).", body = ErrorBody<ErrorCode>),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB.", body = ErrorBody<ErrorCode>),
        (status = 429, description = "`too_many_attempts` (per address, with `Retry-After`) or `too_many_enrollments` (the bureau's waiting list is full).", body = ErrorBody<ErrorCode>, headers(("Retry-After" = u64, description = "Seconds to wait (with `too_many_attempts`)."))),
        (status = 503, description = "`storage_unavailable`.", body = ErrorBody<ErrorCode>),
    ),
)]
pub(crate) async fn request<S: EmsStore>(
    State(ems): State<Arc<Ems<S>>>,
    ClientIp(ip): ClientIp,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<EnrollAccepted>), EmsError> {
    if ems.device_ca.is_none() {
        return Err(EmsError::EnrollmentUnavailable);
    }
    // No credential yet: the same per-address budget as the open sign-in page.
    ems.sign_in_guard
        .check_ip(ip.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)))?;
    let body: EnrollBody = parse(&crate::api::body_bytes(body)?)?;
    let label = check_label(&body.label)?;
    let bureau = bureau_by_code(&ems, &body.bureau).await?;
    let checked = check_request(&body.csr_pem)
        .map_err(|e| EmsError::CertificateRequestInvalid(e.to_string()))?;
    let code = checked.comparison_code();
    let poll_token = myna_web::random_token();
    let filed = ems
        .store
        .request_enrollment(
            bureau.id,
            NewEnrollment {
                invite_hash: hash_secret(&body.invite),
                label,
                code: code.clone(),
                csr_pem: body.csr_pem,
                poll_hash: hash_secret(&poll_token),
                requested_from: ip.map_or_else(|| "in-process".into(), |ip| ip.to_string()),
            },
            ems.enrollment_limits,
            ems.now_ms(),
        )
        .await?;
    match filed {
        Filing::Filed(id) => {
            tracing::info!(bureau = %bureau.code, enrollment = id, %code, "enrollment requested");
            Ok((
                StatusCode::ACCEPTED,
                Json(EnrollAccepted { code, poll_token }),
            ))
        }
        Filing::NoInvite => Err(EmsError::InvitationInvalid),
        Filing::TooManyPending => Err(EmsError::TooManyEnrollments),
    }
}

#[utoipa::path(
    post,
    path = route::ENROLL_STATUS,
    operation_id = "enroll_status",
    tag = "enrollment",
    request_body(content = EnrollPoll, content_type = "application/json"),
    responses(
        (status = 200, description = "Pending, approved (with the certificate) or rejected.", body = EnrollStatus),
        (status = 400, description = "`malformed_request`.", body = ErrorBody<ErrorCode>),
        (status = 404, description = "`enrollment_unknown`: no request has that poll token.", body = ErrorBody<ErrorCode>),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB.", body = ErrorBody<ErrorCode>),
        (status = 503, description = "`storage_unavailable`.", body = ErrorBody<ErrorCode>),
    ),
)]
pub(crate) async fn status<S: EmsStore>(
    State(ems): State<Arc<Ems<S>>>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<EnrollStatus>, EmsError> {
    let poll: EnrollPoll = parse(&crate::api::body_bytes(body)?)?;
    let enrollment = ems
        .store
        .enrollment_by_poll(&hash_secret(&poll.poll_token))
        .await?
        .ok_or(EmsError::EnrollmentUnknown)?;
    Ok(Json(match enrollment.state {
        // Past its time it can no longer be approved: say so rather than "pending".
        EnrollmentState::Pending
            if enrollment.requested_ms < ems.now_ms() - ems.enrollment_limits.pending_for_ms =>
        {
            EnrollStatus::Rejected
        }
        EnrollmentState::Pending => EnrollStatus::Pending,
        EnrollmentState::Approved {
            certificate_pem, ..
        } => EnrollStatus::Approved { certificate_pem },
        EnrollmentState::Rejected => EnrollStatus::Rejected,
    }))
}

async fn bureau_by_code<S: EmsStore>(ems: &Ems<S>, code: &str) -> Result<Bureau, EmsError> {
    ems.store
        .bureaus()
        .await?
        .into_iter()
        .find(|b| b.code == code)
        .ok_or(EmsError::UnknownBureau)
}

/// Approves a pending enrollment of `bureau`: issues its certificate from `ca` and registers
/// the terminal for the invitation's team, bound to it. `None` if it is not pending in this
/// bureau (or lapsed). `today` is the certificate's first day (UTC).
pub async fn approve<S: EmsStore>(
    store: &S,
    ca: &DeviceCa,
    bureau: &Bureau,
    enrollment: EnrollmentId,
    limits: EnrollmentLimits,
    now_ms: i64,
    today: myna_tls::devca::Day,
) -> Result<Option<TerminalId>, EmsError> {
    let Some(pending) = store
        .enrollments(bureau.id, true)
        .await?
        .into_iter()
        .find(|e| e.id == enrollment)
    else {
        return Ok(None);
    };
    let checked = check_request(&pending.csr_pem)
        .map_err(|e| EmsError::CertificateRequestInvalid(e.to_string()))?;
    let subject = ClientSubject {
        common_name: pending.label.clone(),
        organization: bureau.code.clone(),
    };
    let cert_pem =
        myna_tls::identity::issue_for_request(&ca.cert_pem, &ca.key_pem, checked, &subject, today)
            .map_err(|e| EmsError::CertificateRequestInvalid(e.to_string()))?;
    let der = pem_der(&cert_pem)?;
    let certificate = IssuedCertificate {
        sha256: hex::encode(myna_tls::identity::certificate_sha256(&der)),
        not_after_ms: myna_tls::identity::not_after_ms(&der).ok_or_else(|| {
            EmsError::CertificateRequestInvalid("the issued certificate has no end date".into())
        })?,
        pem: cert_pem,
    };
    let terminal = store
        .approve_enrollment(bureau.id, enrollment, certificate, limits, now_ms)
        .await?;
    if let Some(t) = terminal {
        tracing::info!(bureau = %bureau.code, enrollment, terminal = t, "enrollment approved");
    }
    Ok(terminal)
}

/// The SHA-256 (hex) by which ems binds a terminal to its certificate (PEM).
pub fn certificate_fingerprint(cert_pem: &str) -> Result<String, EmsError> {
    Ok(hex::encode(myna_tls::identity::certificate_sha256(
        &pem_der(cert_pem)?,
    )))
}

/// The DER of the one certificate in a PEM text.
fn pem_der(pem: &str) -> Result<Vec<u8>, EmsError> {
    use myna_tls::rustls::pki_types::CertificateDer;
    use myna_tls::rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(|e| EmsError::CertificateRequestInvalid(e.to_string()))
}

/// UTC today as the CA's dates want it.
pub fn utc_today(now: chrono::DateTime<chrono::Utc>) -> myna_tls::devca::Day {
    use chrono::Datelike;
    let d = now.date_naive();
    (
        d.year(),
        u8::try_from(d.month()).unwrap_or(1),
        u8::try_from(d.day()).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn labels_are_short_printable_text() {
        assert_eq!(check_label("  川崎1 車載  ").unwrap(), "川崎1 車載");
        assert!(check_label("").is_err());
        assert!(check_label("   ").is_err());
        assert!(check_label("a\u{7}b").is_err());
        for invisible in [
            "\u{202e}x",
            "a\u{200b}b",
            "x\u{2066}y",
            "\u{feff}z",
            "a\u{2028}b",
        ] {
            assert!(check_label(invisible).is_err(), "{invisible:?}");
        }
        assert!(check_label(&"あ".repeat(65)).is_err());
        assert!(check_label(&"あ".repeat(64)).is_ok());
    }
}
