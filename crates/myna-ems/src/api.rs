//! The terminal API: JSON under `/api/v1/terminal` (types and routes in
//! `myna_wire::terminal`), the terminal's credential as bearer token and the crew session in
//! `x-crew-session`.

use crate::auth::{CrewCaller, TerminalRequest};
use crate::error::EmsError;
use crate::sign_in::SignInFrom;
use crate::wire::{
    ConsentTap, CrewEvent, EventAck, EventBody, HospitalStatuses, IncidentView, PushEvent,
    SignInBody, SignedIn, SignedOut, SummaryBody, TerminalInfo, TerminalSummary, incident_view,
    route,
};
use crate::{CREW_SHIFT, Change, Ems, Push};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use futures_util::Stream;
use myna_domain::incident::{Actor, EventKind, IncidentError, MynaOutcome, ViewRecord};
use myna_domain::patient::PatientKey;
use myna_provider::ViewerBody;
use myna_provider::client::{ProviderClient, SummaryOutcome};
use myna_store::ems::{
    Appended, EmsStore, HandoffSnapshot, IncidentFilter, IncidentRecord, NewEvent, Role,
};
use myna_store::hash_secret;
use myna_wire::provider::ProviderErrorCode;
use myna_wire::{ErrorBody, terminal::ErrorCode};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

type St<S> = State<Arc<Ems<S>>>;

pub fn routes<S: EmsStore>() -> Router<Arc<Ems<S>>> {
    Router::new()
        .route(route::WHOAMI, get(whoami::<S>))
        .route(route::SIGN_IN, post(sign_in::<S>))
        .route(route::SIGN_OUT, post(sign_out::<S>))
        .route(route::INCIDENTS, get(incidents::<S>))
        .route(route::INCIDENT, get(incident::<S>))
        .route(route::EVENTS, post(event::<S>))
        .route(route::SUMMARY, post(summary::<S>))
        .route(route::STREAM, get(stream::<S>))
        .route(route::HOSPITALS, get(hospitals::<S>))
}

/// The bureau's hospitals' acceptance statuses, for the tablet's ranking.
#[utoipa::path(
    get,
    path = route::HOSPITALS,
    operation_id = "hospitals",
    tag = "terminal",
    security(("terminal" = [], "crew_session" = []), ("terminal_certificate" = [], "crew_session" = [])),
    responses(
        (status = 200, description = "The bureau's hospitals' acceptance statuses.", body = HospitalStatuses),
        (status = 401, description = "`terminal_unknown`, `terminal_revoked`, `terminal_certificate_required`, `terminal_certificate_expired`, `crew_signed_out`.", body = ErrorBody<ErrorCode>),
        (status = 503, description = "`storage_unavailable`.", body = ErrorBody<ErrorCode>),
    ),
)]
async fn hospitals<S: EmsStore>(
    State(ems): St<S>,
    req: TerminalRequest,
) -> Result<Json<HospitalStatuses>, EmsError> {
    let c = ems.crew(&req).await?;
    Ok(Json(HospitalStatuses {
        statuses: ems.store.hospital_statuses(c.at.bureau.id).await?,
        stale_after_minutes: ems.status_stale_after_minutes,
    }))
}

/// A request body, or our own error (axum's rejection is plain text, outside the contract).
pub(crate) fn body_bytes(
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<axum::body::Bytes, EmsError> {
    body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            EmsError::PayloadTooLarge(crate::MAX_BODY_BYTES)
        } else {
            EmsError::Malformed(e.body_text())
        }
    })
}

/// The incident id of the path, or our own error.
fn incident_id(id: Result<Path<i64>, PathRejection>) -> Result<i64, EmsError> {
    id.map(|Path(id)| id)
        .map_err(|e| EmsError::Malformed(format!("incident id: {}", e.body_text())))
}

/// Parses a JSON body into our own error on failure (never axum's plain-text rejection).
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, EmsError> {
    serde_json::from_slice(body).map_err(|e| EmsError::Malformed(e.to_string()))
}

fn terminal_info(c: &crate::auth::TerminalCaller) -> TerminalInfo {
    TerminalInfo {
        terminal_id: c.terminal.id,
        label: c.terminal.label.clone(),
        bureau: c.bureau.code.clone(),
        team_id: c.team.id,
        team_name: c.team.name.clone(),
    }
}

#[utoipa::path(
    get,
    path = route::WHOAMI,
    operation_id = "whoami",
    tag = "terminal",
    security(("terminal" = []), ("terminal_certificate" = [])),
    responses(
        (status = 200, description = "The terminal, its bureau and team.", body = TerminalInfo),
        (status = 401, description = "`terminal_unknown`, `terminal_revoked`, `terminal_certificate_required`, `terminal_certificate_expired`: the terminal's credential.", body = ErrorBody<ErrorCode>),
        (status = 503, description = "`storage_unavailable`.", body = ErrorBody<ErrorCode>),
    ),
)]
async fn whoami<S: EmsStore>(
    State(ems): St<S>,
    req: TerminalRequest,
) -> Result<Json<TerminalInfo>, EmsError> {
    let at = ems.terminal(&req).await?;
    Ok(Json(terminal_info(&at)))
}

#[utoipa::path(
    post,
    path = route::SIGN_IN,
    operation_id = "sign_in",
    tag = "terminal",
    request_body(content = SignInBody, content_type = "application/json"),
    security(("terminal" = []), ("terminal_certificate" = [])),
    responses(
        (status = 200, description = "A crew session on this terminal.", body = SignedIn),
        (status = 400, description = "`malformed_request`: the body is not the type, or a value is out of its bounds.", body = ErrorBody<ErrorCode>),
        (status = 401, description = "`terminal_unknown`, `terminal_revoked`, `terminal_certificate_required`, `terminal_certificate_expired`, `bad_credentials`.", body = ErrorBody<ErrorCode>),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB.", body = ErrorBody<ErrorCode>),
        (status = 423, description = "`account_locked`: too many failed sign-ins in a row.", body = ErrorBody<ErrorCode>),
        (status = 429, description = "`too_many_attempts`: the sign-in rate limit.", body = ErrorBody<ErrorCode>, headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 503, description = "`busy` (the password pool is full, with `Retry-After`) or `storage_unavailable`.", body = ErrorBody<ErrorCode>, headers(("Retry-After" = u64, description = "Seconds to wait (with `busy`)."))),
    ),
)]
async fn sign_in<S: EmsStore>(
    State(ems): St<S>,
    req: TerminalRequest,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<SignedIn>, EmsError> {
    let at = ems.terminal(&req).await?;
    let body: SignInBody = parse(&body_bytes(body)?)?;
    let account = ems
        .sign_in(
            SignInFrom::Terminal(at.terminal.id),
            &at.bureau.code,
            Some(&at.bureau),
            body.login.trim(),
            body.password,
            &[Role::Crew],
        )
        .await?;
    let session = myna_web::random_token();
    let expires_ms = (ems.now() + CREW_SHIFT).timestamp_millis();
    ems.store
        .create_session(
            hash_secret(&session),
            account.id,
            Some(at.terminal.id),
            expires_ms,
        )
        .await?;
    Ok(Json(SignedIn {
        session,
        crew_login: account.login,
        crew_name: account.display_name,
        expires_ms,
        terminal: terminal_info(&at),
    }))
}

#[utoipa::path(
    post,
    path = route::SIGN_OUT,
    operation_id = "sign_out",
    tag = "terminal",
    security(("terminal" = [], "crew_session" = []), ("terminal_certificate" = [], "crew_session" = [])),
    responses(
        (status = 200, description = "The session ended.", body = SignedOut),
        (status = 401, description = "`terminal_unknown`, `terminal_revoked`, `terminal_certificate_required`, `terminal_certificate_expired`, `crew_signed_out`.", body = ErrorBody<ErrorCode>),
        (status = 503, description = "`storage_unavailable`.", body = ErrorBody<ErrorCode>),
    ),
)]
async fn sign_out<S: EmsStore>(
    State(ems): St<S>,
    req: TerminalRequest,
) -> Result<Json<SignedOut>, EmsError> {
    ems.crew(&req).await?;
    if let Some(token) = req
        .headers
        .get(crate::wire::CREW_SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        ems.store.end_session(&hash_secret(token)).await?;
    }
    Ok(Json(SignedOut { signed_out: true }))
}

#[utoipa::path(
    get,
    path = route::INCIDENTS,
    operation_id = "incidents",
    tag = "terminal",
    security(("terminal" = [], "crew_session" = []), ("terminal_certificate" = [], "crew_session" = [])),
    responses(
        (status = 200, description = "The team's open incidents, newest first.", body = Vec<IncidentView>),
        (status = 401, description = "`terminal_unknown`, `terminal_revoked`, `terminal_certificate_required`, `terminal_certificate_expired`, `crew_signed_out`.", body = ErrorBody<ErrorCode>),
        (status = 503, description = "`storage_unavailable`.", body = ErrorBody<ErrorCode>),
    ),
)]
async fn incidents<S: EmsStore>(
    State(ems): St<S>,
    req: TerminalRequest,
) -> Result<Json<Vec<IncidentView>>, EmsError> {
    let c = ems.crew(&req).await?;
    let teams = ems.store.teams(c.at.bureau.id).await?;
    let list = ems
        .store
        .incidents(
            c.at.bureau.id,
            IncidentFilter {
                open_only: true,
                team: Some(c.at.team.id),
                limit: 20,
            },
        )
        .await?;
    Ok(Json(
        list.iter()
            .map(|r| incident_view(r, &teams, ems.now()))
            .collect(),
    ))
}

/// Loads an incident of the caller's bureau that is assigned to the caller's team.
async fn own_incident<S: EmsStore>(
    ems: &Ems<S>,
    c: &CrewCaller,
    id: i64,
) -> Result<IncidentRecord, EmsError> {
    let record = ems
        .store
        .incident(c.at.bureau.id, id)
        .await?
        .ok_or(EmsError::IncidentNotFound)?;
    match record.log.assigned_team() {
        Some(t) if t == c.at.team.id => Ok(record),
        _ => Err(EmsError::Rule(IncidentError::WrongTeam)),
    }
}

#[utoipa::path(
    get,
    path = route::INCIDENT,
    operation_id = "incident",
    tag = "terminal",
    params(("id" = i64, Path, description = "The incident's id.")),
    security(("terminal" = [], "crew_session" = []), ("terminal_certificate" = [], "crew_session" = [])),
    responses(
        (status = 200, description = "The incident.", body = IncidentView),
        (status = 400, description = "`malformed_request`: the id is not an integer.", body = ErrorBody<ErrorCode>),
        (status = 401, description = "`terminal_unknown`, `terminal_revoked`, `terminal_certificate_required`, `terminal_certificate_expired`, `crew_signed_out`.", body = ErrorBody<ErrorCode>),
        (status = 403, description = "`wrong_team`: the incident is not assigned to the caller's team.", body = ErrorBody<ErrorCode>),
        (status = 404, description = "`incident_not_found`.", body = ErrorBody<ErrorCode>),
        (status = 503, description = "`storage_unavailable`.", body = ErrorBody<ErrorCode>),
    ),
)]
async fn incident<S: EmsStore>(
    State(ems): St<S>,
    req: TerminalRequest,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<IncidentView>, EmsError> {
    let c = ems.crew(&req).await?;
    let id = incident_id(id)?;
    let record = own_incident(&ems, &c, id).await?;
    let teams = ems.store.teams(c.at.bureau.id).await?;
    Ok(Json(incident_view(&record, &teams, ems.now())))
}

/// Keys of the events ems records itself (views, outcomes) start with this; a crew's may not,
/// so no crew can take the key of a view before it happens.
const SERVER_KEY_PREFIX: &str = "ems:";

fn check_key(key: &str) -> Result<(), EmsError> {
    if key.is_empty() || key.len() > 128 {
        return Err(EmsError::Malformed(
            "idempotency_key must be 1–128 bytes".into(),
        ));
    }
    if key.starts_with(SERVER_KEY_PREFIX) {
        return Err(EmsError::Malformed(format!(
            "idempotency keys starting with {SERVER_KEY_PREFIX:?} are ems's own"
        )));
    }
    Ok(())
}

/// The key of the event ems records for a view the provider answered with `access_id`.
pub(crate) fn view_key(access_id: i64) -> String {
    format!("{SERVER_KEY_PREFIX}view-{access_id}")
}

/// A device time must be a time at all (the rule then bounds it).
fn check_device_ms(device_at_ms: Option<i64>) -> Result<(), EmsError> {
    match device_at_ms {
        Some(ms) if chrono::DateTime::from_timestamp_millis(ms).is_none() || ms <= 0 => Err(
            EmsError::Malformed(format!("device_at_ms {ms} is not a time")),
        ),
        _ => Ok(()),
    }
}

/// Largest base64 certificate accepted.
const MAX_CERT_B64: usize = 16 * 1024;

/// A card's certificate from a request: its DER and the patient it stands for in this bureau.
struct CardOf {
    der: Vec<u8>,
    patient: PatientKey,
}

fn card_of(c: &CrewCaller, certificate_b64: &str) -> Result<CardOf, EmsError> {
    if certificate_b64.len() > MAX_CERT_B64 {
        return Err(EmsError::Malformed("certificate is too large".into()));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(certificate_b64.as_bytes())
        .map_err(|e| EmsError::Malformed(format!("certificate is not base64: {e}")))?;
    let serial =
        myna_pki::certificate_serial_hex(&der).map_err(|e| EmsError::Malformed(e.to_string()))?;
    Ok(CardOf {
        patient: c.at.bureau.patient_secret.patient(&serial),
        der,
    })
}

/// The patient a crew event is about, resolved from the certificate it carries (or, for a
/// withdrawal, from the patient's number in the incident).
fn to_event_kind(
    c: &CrewCaller,
    record: &IncidentRecord,
    event: CrewEvent,
) -> Result<EventKind, EmsError> {
    Ok(match event {
        CrewEvent::Phase { phase } => EventKind::Phase { phase },
        CrewEvent::IdentityConfirmed { certificate } => EventKind::IdentityConfirmed {
            patient: card_of(c, &certificate)?.patient,
        },
        CrewEvent::Consent {
            certificate,
            consent,
        } => EventKind::Consent {
            patient: card_of(c, &certificate)?.patient,
            consent,
        },
        CrewEvent::ConsentRefused { certificate } => EventKind::ConsentRefused {
            patient: card_of(c, &certificate)?.patient,
        },
        CrewEvent::ConsentWithdrawn { patient } => {
            let key = record
                .log
                .patient_by_number(patient)
                .ok_or(EmsError::Rule(IncidentError::UnknownPatient))?;
            EventKind::ConsentWithdrawn { patient: key }
        }
        CrewEvent::Outcome {
            outcome: MynaOutcome::Viewed,
        } => {
            return Err(EmsError::Forbidden(
                "\"viewed\" is recorded by ems from its own view log, never posted",
            ));
        }
        CrewEvent::Outcome {
            outcome: MynaOutcome::ConsentRefused,
        } => {
            return Err(EmsError::Forbidden(
                "a refusal is a patient's: post consent_refused with the card's certificate",
            ));
        }
        CrewEvent::Outcome { outcome } => EventKind::Outcome { outcome },
        CrewEvent::Inquiry {
            hospital,
            result,
            reason,
        } => {
            if !registry_has(&hospital) {
                return Err(EmsError::Rule(IncidentError::UnknownHospital));
            }
            EventKind::Inquiry {
                hospital,
                result,
                reason,
            }
        }
        CrewEvent::Vitals { vitals } => EventKind::Vitals { vitals },
        CrewEvent::Destination { hospital, patients } => {
            if !registry_has(&hospital) {
                return Err(EmsError::Rule(IncidentError::UnknownHospital));
            }
            let patients = patients
                .iter()
                .map(|n| {
                    record
                        .log
                        .patient_by_number(*n)
                        .ok_or(EmsError::Rule(IncidentError::UnknownPatient))
                })
                .collect::<Result<Vec<_>, _>>()?;
            EventKind::Destination { hospital, patients }
        }
        CrewEvent::Closed => EventKind::Closed,
    })
}

#[utoipa::path(
    post,
    path = route::EVENTS,
    operation_id = "event",
    tag = "terminal",
    params(("id" = i64, Path, description = "The incident's id.")),
    request_body(content = EventBody, content_type = "application/json"),
    security(("terminal" = [], "crew_session" = []), ("terminal_certificate" = [], "crew_session" = [])),
    responses(
        (status = 200, description = "The event, appended or (for a known key) answered.", body = EventAck),
        (status = 400, description = "`malformed_request`: the body is not the type, or a value is out of its bounds.", body = ErrorBody<ErrorCode>),
        (status = 401, description = "`terminal_unknown`, `terminal_revoked`, `terminal_certificate_required`, `terminal_certificate_expired`, `crew_signed_out`.", body = ErrorBody<ErrorCode>),
        (status = 403, description = "`wrong_team`, or `forbidden` (an outcome ems derives itself).", body = ErrorBody<ErrorCode>),
        (status = 404, description = "`incident_not_found`.", body = ErrorBody<ErrorCode>),
        (status = 409, description = "The incident's rules refused the event (`incident_closed`, `phase_out_of_order`, `device_time_ahead`, …), or `idempotency_key_reused`.", body = ErrorBody<ErrorCode>),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB.", body = ErrorBody<ErrorCode>),
        (status = 503, description = "`storage_unavailable`.", body = ErrorBody<ErrorCode>),
    ),
)]
async fn event<S: EmsStore>(
    State(ems): St<S>,
    req: TerminalRequest,
    id: Result<Path<i64>, PathRejection>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<EventAck>, EmsError> {
    let c = ems.crew(&req).await?;
    let id = incident_id(id)?;
    let body: EventBody = parse(&body_bytes(body)?)?;
    check_key(&body.idempotency_key)?;
    check_device_ms(body.device_at_ms)?;
    let record = own_incident(&ems, &c, id).await?;
    let kind = to_event_kind(&c, &record, body.event)?;
    let event = NewEvent {
        kind,
        actor: crew_actor(&c),
        idempotency_key: body.idempotency_key,
        device_at_ms: body.device_at_ms,
        team_guard: Some(c.at.team.id),
    };
    let appended = append_and_notify(&ems, &c, id, event).await?;
    Ok(Json(ack(&ems, &c, id, &appended).await?))
}

async fn ack<S: EmsStore>(
    ems: &Ems<S>,
    c: &CrewCaller,
    id: i64,
    appended: &Appended,
) -> Result<EventAck, EmsError> {
    let e = appended.event();
    let patient = match e.kind.patient() {
        Some(key) => own_incident(ems, c, id).await?.log.patient_number(key),
        None => None,
    };
    Ok(EventAck {
        seq: e.seq,
        at_ms: e.at.timestamp_millis(),
        duplicate: matches!(appended, Appended::Duplicate(_)),
        patient,
    })
}

/// The summary for the card in the request. With `consent`, tap 2 is one round trip: the
/// consent is appended first (idempotently, exactly like a posted `Consent` event), then the
/// viewing rule is checked for this card's patient, then the provider is asked.
#[utoipa::path(
    post,
    path = route::SUMMARY,
    operation_id = "summary",
    tag = "terminal",
    params(("id" = i64, Path, description = "The incident's id.")),
    request_body(content = SummaryBody, content_type = "application/json"),
    security(("terminal" = [], "crew_session" = []), ("terminal_certificate" = [], "crew_session" = [])),
    responses(
        (status = 200, description = "The summary, recorded in ems's view log before it left.", body = TerminalSummary),
        (status = 400, description = "`malformed_request`: the body is not the type, or a value is out of its bounds.", body = ErrorBody<ErrorCode>),
        (status = 401, description = "`terminal_unknown`, `terminal_revoked`, `terminal_certificate_required`, `terminal_certificate_expired`, `crew_signed_out`.", body = ErrorBody<ErrorCode>),
        (status = 403, description = "`wrong_team`: the incident is not assigned to the caller's team.", body = ErrorBody<ErrorCode>),
        (status = 404, description = "`incident_not_found`, or `person_not_found` (no insured person is linked to the card).", body = ErrorBody<ErrorCode>),
        (status = 409, description = "The viewing rule refused (`no_consent`, `identity_not_confirmed`, `consent_withdrawn`, `window_passed`, …), or the consent tap's rules did.", body = ErrorBody<ErrorCode>),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB.", body = ErrorBody<ErrorCode>),
        (status = 422, description = "`card_rejected`: the provider refused the card's certificate.", body = ErrorBody<ErrorCode>),
        (status = 502, description = "`provider_refused`: the provider refused the request itself.", body = ErrorBody<ErrorCode>),
        (status = 503, description = "`provider_unavailable` or `storage_unavailable`.", body = ErrorBody<ErrorCode>),
    ),
)]
async fn summary<S: EmsStore>(
    State(ems): St<S>,
    req: TerminalRequest,
    id: Result<Path<i64>, PathRejection>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<TerminalSummary>, EmsError> {
    let c = ems.crew(&req).await?;
    let id = incident_id(id)?;
    let body: SummaryBody = parse(&body_bytes(body)?)?;
    let card = card_of(&c, &body.certificate)?;
    let mut record = own_incident(&ems, &c, id).await?;
    if let Some(ConsentTap {
        idempotency_key,
        device_at_ms,
        consent,
    }) = body.consent
    {
        check_key(&idempotency_key)?;
        check_device_ms(device_at_ms)?;
        let event = NewEvent {
            kind: EventKind::Consent {
                patient: card.patient.clone(),
                consent,
            },
            actor: crew_actor(&c),
            idempotency_key,
            device_at_ms,
            team_guard: Some(c.at.team.id),
        };
        append_and_notify(&ems, &c, id, event).await?;
        record = own_incident(&ems, &c, id).await?;
    }
    let window = chrono::Duration::seconds(c.at.bureau.view_window_s);
    let consent = match record
        .log
        .may_view(c.at.team.id, &card.patient, ems.now(), window)
    {
        Ok(consent) => consent,
        Err(reason) => {
            // Refused attempts leave a trace for the bureau (the patient by their key's prefix).
            tracing::warn!(
                bureau = %c.at.bureau.code,
                incident = %record.number,
                team = %c.at.team.name,
                crew = %c.crew.login,
                terminal = c.at.terminal.id,
                patient = card.patient.short(),
                %reason,
                "summary refused"
            );
            return Err(EmsError::Rule(reason));
        }
    };
    let patient_number = record
        .log
        .patient_number(&card.patient)
        .ok_or(EmsError::Rule(IncidentError::UnknownPatient))?;

    let client = ems.provider(&c.at.bureau)?;
    let request = ProviderClient::summary_body(
        &card.der,
        consent,
        &record.number,
        ViewerBody {
            organisation: c.at.bureau.code.clone(),
            team: c.at.team.name.clone(),
            crew_member: c.crew.login.clone(),
        },
    );
    let answer = tokio::time::timeout(ems.provider_timeout, client.summary(&request, body.view))
        .await
        .map_err(|_| EmsError::ProviderUnavailable("no answer in time".into()))?
        .map_err(|e| EmsError::ProviderUnavailable(format!("{e:#}")))?;
    match answer {
        SummaryOutcome::Ok(response) => {
            // The view is audited before the summary leaves ems.
            ems.store
                .record_view(ViewRecord {
                    at_ms: ems.now_ms(),
                    bureau: c.at.bureau.code.clone(),
                    incident_number: record.number.clone(),
                    team: c.at.team.name.clone(),
                    crew_member: c.crew.login.clone(),
                    terminal: c.at.terminal.id,
                    patient: card.patient.clone(),
                    patient_number,
                    consent,
                    view: body.view,
                    provider_access_id: response.access_id,
                    hospital: None,
                })
                .await?;

            // Checked again inside the append: a withdrawal or a reassignment that landed
            // while the provider answered stops the summary here.
            let viewed = EventKind::SummaryViewed {
                patient: card.patient.clone(),
                view: body.view,
            };
            let key = view_key(response.access_id);
            // The funnel's "viewed" is derived from this event (`Incident::outcome`).
            append_server_event(&ems, &c, id, viewed, key).await?;
            // Kept only once the view is committed: the copy the destination hospital will read
            // (no second card read).
            ems.store
                .save_handoff(
                    c.at.bureau.id,
                    id,
                    HandoffSnapshot {
                        patient: card.patient.clone(),
                        patient_number,
                        view: body.view,
                        provider_access_id: response.access_id,
                        team: c.at.team.name.clone(),
                        crew_member: c.crew.login.clone(),
                        saved_ms: ems.now_ms(),
                        summary: response.summary.clone(),
                    },
                )
                .await?;
            Ok(Json(TerminalSummary {
                patient: patient_number,
                summary: *response,
            }))
        }
        SummaryOutcome::Refused { code, message, .. } => match code {
            ProviderErrorCode::UnknownSerial => {
                record_outcome(&ems, &c, id, &record.log, MynaOutcome::PersonNotFound).await?;
                Err(EmsError::PersonNotFound)
            }
            c if c.is_certificate() => Err(EmsError::CardRejected(code)),
            _ => Err(EmsError::ProviderRefused { code, message }),
        },
    }
}

/// The bureau's registry names the hospitals a crew can phone and take patients to.
fn registry_has(hospital: &str) -> bool {
    myna_domain::hospitals::Registry::shared().is_ok_and(|r| r.get(hospital).is_some())
}

fn crew_actor(c: &CrewCaller) -> Actor {
    Actor::Crew {
        account: c.crew.id,
        terminal: c.at.terminal.id,
        team: c.at.team.id,
    }
}

/// Appends an event for the crew's team and, if it is new, tells the team's terminals.
async fn append_and_notify<S: EmsStore>(
    ems: &Ems<S>,
    c: &CrewCaller,
    id: i64,
    event: NewEvent,
) -> Result<Appended, EmsError> {
    let appended = ems
        .store
        .append(c.at.bureau.id, id, event, ems.now_ms())
        .await?;
    if matches!(appended, Appended::New(_)) {
        ems.notify(Change {
            bureau: c.at.bureau.id,
            incident: id,
            teams: vec![c.at.team.id],
        });
    }
    Ok(appended)
}

/// An event ems itself records on the crew's behalf (a view, an outcome).
async fn append_server_event<S: EmsStore>(
    ems: &Ems<S>,
    c: &CrewCaller,
    id: i64,
    kind: EventKind,
    key: String,
) -> Result<(), EmsError> {
    let event = NewEvent {
        kind,
        actor: crew_actor(c),
        idempotency_key: key,
        device_at_ms: None,
        team_guard: Some(c.at.team.id),
    };
    append_and_notify(ems, c, id, event).await.map(|_| ())
}

/// Records the funnel outcome unless one is recorded already (the first outcome stands).
async fn record_outcome<S: EmsStore>(
    ems: &Ems<S>,
    c: &CrewCaller,
    id: i64,
    log: &myna_domain::incident::Incident,
    outcome: MynaOutcome,
) -> Result<(), EmsError> {
    if log.outcome().is_some() {
        return Ok(());
    }
    let key = format!(
        "{SERVER_KEY_PREFIX}outcome-{}",
        serde_json::to_string(&outcome).unwrap_or_default()
    );
    match append_server_event(ems, c, id, EventKind::Outcome { outcome }, key).await {
        Ok(()) | Err(EmsError::Rule(IncidentError::OutcomeRepeated)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Server-sent events for the terminal: `incident` with the incident id whenever an incident
/// assigned to (or taken from) the terminal's team changes. A revocation (the admin page,
/// `ems terminal revoke`, another ems process on the database) ends the stream at once; the
/// credential is also re-checked every 10 s (`ems serve --stream-recheck-s`), so an ended
/// shift closes it too.
// The push stream is described as `text/event-stream`; its events are not JSON (`incident`
// carries the id, `resync` and `signed_out` a word), so no schema is given for them.
#[utoipa::path(
    get,
    path = route::STREAM,
    operation_id = "stream",
    tag = "terminal",
    security(("terminal" = [], "crew_session" = []), ("terminal_certificate" = [], "crew_session" = [])),
    responses(
        (status = 200, description = "Server-sent events: `incident` (data: the incident id), `resync`, `signed_out`.", content_type = "text/event-stream"),
        (status = 401, description = "`terminal_unknown`, `terminal_revoked`, `terminal_certificate_required`, `terminal_certificate_expired`, `crew_signed_out`.", body = ErrorBody<ErrorCode>),
        (status = 503, description = "`storage_unavailable`.", body = ErrorBody<ErrorCode>),
    ),
)]
async fn stream<S: EmsStore>(
    State(ems): St<S>,
    req: TerminalRequest,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, EmsError> {
    let c = ems.crew(&req).await?;
    let watch = Watch {
        changes: ems.subscribe(),
        revocations: ems.subscribe_revocations(),
        tick: tokio::time::interval(ems.stream_recheck),
        ems: ems.clone(),
        req,
        bureau: c.at.bureau.id,
        team: c.at.team.id,
        terminal: c.at.terminal.id,
    };
    let events = futures_util::stream::unfold(Some(watch), |watch| async move {
        let mut w = watch?;
        let ended = || {
            SseEvent::default()
                .event(PushEvent::SignedOut.as_str())
                .data("ended")
        };
        loop {
            tokio::select! {
                r = w.changes.recv() => match r {
                    Ok(Push::Changed(ch)) if ch.bureau == w.bureau && ch.teams.contains(&w.team) => {
                        let ev = SseEvent::default().event(PushEvent::Incident.as_str()).data(ch.incident.to_string());
                        return Some((Ok(ev), Some(w)));
                    }
                    Ok(Push::Changed(_)) => continue,
                    Ok(Push::Resync) | Err(RecvError::Lagged(_)) => {
                        // Notes may have been lost, a revocation among them.
                        if w.ems.crew(&w.req).await.is_err() {
                            return Some((Ok(ended()), None));
                        }
                        let ev = SseEvent::default().event(PushEvent::Resync.as_str()).data("lagged");
                        return Some((Ok(ev), Some(w)));
                    }
                    Err(RecvError::Closed) => return None,
                },
                r = w.revocations.recv() => match r {
                    // Confirmed in the store: anyone who can NOTIFY on the database could send
                    // a note, and ending a stream signs the crew out of the tablet.
                    Ok(revoked) if revoked == (w.bureau, w.terminal) => {
                        if w.ems.crew(&w.req).await.is_err() {
                            return Some((Ok(ended()), None));
                        }
                    }
                    // Missed revocations: check this terminal now.
                    Err(RecvError::Lagged(_)) if w.ems.crew(&w.req).await.is_err() => {
                        return Some((Ok(ended()), None));
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                },
                _ = w.tick.tick() => {
                    if w.ems.crew(&w.req).await.is_err() {
                        return Some((Ok(ended()), None));
                    }
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// What one terminal's push stream watches.
struct Watch<S> {
    changes: tokio::sync::broadcast::Receiver<Push>,
    revocations:
        tokio::sync::broadcast::Receiver<(myna_store::ems::BureauId, myna_store::ems::TerminalId)>,
    tick: tokio::time::Interval,
    ems: Arc<Ems<S>>,
    req: TerminalRequest,
    bureau: myna_store::ems::BureauId,
    team: myna_store::ems::TeamId,
    terminal: myna_store::ems::TerminalId,
}

/// The admin page's password reset: a new password also lifts a lock.
pub async fn reset_password<S: EmsStore>(
    ems: &Ems<S>,
    bureau: i64,
    login: &str,
    password: &str,
) -> Result<bool, EmsError> {
    let hash = ems
        .sign_in_guard
        .browser_pool
        .hash(password.to_owned())
        .await?;
    Ok(ems.store.set_password(bureau, login, hash).await?)
}
