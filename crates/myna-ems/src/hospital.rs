//! The hospital screen, served by `ems` beside the desk and the terminal API. Staff of one
//! registry hospital keep its 応需情報 (acceptance status) current, see the patients crews
//! are bringing to it before they arrive (pushed), and sign the handoff.
//!
//! A staff account sees only incidents of its bureau whose destination is its hospital, and a
//! patient's summary only under `Incident::may_hospital_view`; every such view is written to
//! ems's view log with the crew's basis passed on.

use crate::error::EmsError;
use crate::wire::{IncidentView, incident_view};
use crate::{Ems, Push};
use askama::Template;
use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use myna_domain::access::Consent;
use myna_domain::hospitals::{
    Acceptance, Capability, Criteria, Hospital, HospitalStatus, Registry, incident_origin,
};
use myna_domain::incident::{Actor, EventKind, IncidentError, Phase, ViewRecord};
use myna_domain::summary::{
    DrugGroup, EmergencySummary, View, VisitGroup, group_drugs, group_visits,
};
use myna_domain::vitals::{VitalSign, Vitals};
use myna_fhir::{HandoffInput, handoff_bundle};
use myna_store::ems::{
    Bureau, EmsStore, HandoffSnapshot, IncidentFilter, IncidentRecord, Role, Session, StatusChange,
};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

type St<S> = State<Arc<Ems<S>>>;

/// How many recent incidents of the bureau are searched for this hospital's patients.
const RECENT_INCIDENTS: u32 = 200;

pub fn routes<S: EmsStore>() -> Router<Arc<Ems<S>>> {
    Router::new()
        .route("/hospital", get(home::<S>))
        .route("/hospital/status", post(set_status::<S>))
        .route("/hospital/list", get(list::<S>))
        .route("/hospital/stream", get(stream::<S>))
        .route("/hospital/incidents/{id}/receipt", post(receipt::<S>))
        .merge(
            // Reading a copy writes the view log: only our own pages may ask (an image or a
            // link on another site would record views in the staff member's name).
            Router::new()
                .route("/hospital/incidents/{id}", get(patient_page::<S>))
                .route(
                    "/hospital/incidents/{id}/patients/{n}/handoff.json",
                    get(handoff_json::<S>),
                )
                .route(
                    "/hospital/incidents/{id}/patients/{n}/handoff.pdf",
                    get(handoff_pdf::<S>),
                )
                .route_layer(axum::middleware::from_fn(myna_web::csrf::own_pages_only)),
        )
        // Patient data must not outlive the page in the browser's caches (a shared ER PC).
        .layer(axum::middleware::map_response(
            |mut r: Response| async move {
                r.headers_mut().insert(
                    axum::http::header::CACHE_CONTROL,
                    axum::http::HeaderValue::from_static("no-store"),
                );
                r
            },
        ))
}

/// A signed-in member of a hospital's staff, their bureau and their registry hospital.
pub(crate) struct Staff {
    session: Session,
    bureau: Bureau,
    hospital: Hospital,
    /// The session's token for its forms (`myna_web::csrf`).
    csrf: String,
}

impl Staff {
    fn actor(&self) -> Actor {
        Actor::Hospital {
            account: self.session.account.id,
            hospital: self.hospital.id.clone(),
        }
    }
}

impl<S: EmsStore> FromRequestParts<Arc<Ems<S>>> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ems: &Arc<Ems<S>>) -> Result<Self, Response> {
        staff(ems, &parts.headers).await.map_err(|e| match e {
            None => Redirect::to("/login").into_response(),
            Some(e) => e.into_response(),
        })
    }
}

/// The staff member behind the session cookie; `Err(None)` when there is none.
async fn staff<S: EmsStore>(
    ems: &Ems<S>,
    headers: &axum::http::HeaderMap,
) -> Result<Staff, Option<EmsError>> {
    let session = match ems.browser_session(headers).await {
        Ok(Some(s)) if s.account.role == Role::Hospital => s,
        Ok(_) => return Err(None),
        Err(e) => return Err(Some(e)),
    };
    let hospital = session
        .account
        .hospital_id
        .as_deref()
        .and_then(|id| Registry::shared().ok()?.get(id).cloned())
        .ok_or(Some(EmsError::Forbidden(
            "this account names no hospital of the registry",
        )))?;
    match ems.store.bureau_by_id(session.account.bureau_id).await {
        Ok(Some(bureau)) => Ok(Staff {
            session,
            bureau,
            hospital,
            csrf: myna_web::cookie(headers, ems.session_cookie_name())
                .map(myna_web::csrf::token)
                .unwrap_or_default(),
        }),
        Ok(None) => Err(None),
        Err(e) => Err(Some(e.into())),
    }
}

/// The incident if it is of the staff's bureau and its destination is their hospital. Anything
/// else is refused alike, and leaves a trace.
async fn own_patient<S: EmsStore>(
    ems: &Ems<S>,
    st: &Staff,
    id: i64,
) -> Result<IncidentRecord, EmsError> {
    let record = ems.store.incident(st.bureau.id, id).await?;
    match record {
        Some(r) if r.log.destination().as_deref() == Some(st.hospital.id.as_str()) => Ok(r),
        _ => {
            tracing::warn!(
                bureau = %st.bureau.code,
                hospital = %st.hospital.id,
                staff = %st.session.account.login,
                incident = id,
                "hospital view refused: not this hospital's patient"
            );
            Err(EmsError::Rule(IncidentError::NotDestination))
        }
    }
}

struct StatusRow {
    capability: &'static str,
    label: &'static str,
    current: &'static str,
}

struct HistoryRow {
    at: String,
    summary: String,
}

#[derive(Template)]
#[template(path = "hospital_home.html")]
struct HomePage {
    hospital: String,
    user: String,
    bureau: String,
    message: Option<String>,
    rows: Vec<StatusRow>,
    choices: [(&'static str, &'static str); 3],
    beds: String,
    note: String,
    updated: Option<String>,
    stale: bool,
    stale_after: i64,
    history: Vec<HistoryRow>,
    csrf: String,
}

fn status_summary(s: &HospitalStatus) -> String {
    let mut parts: Vec<String> = s
        .capabilities
        .iter()
        .filter(|(_, a)| *a != Acceptance::Accepting)
        .map(|(c, a)| format!("{} {}", c.label_ja(), a.label_ja()))
        .collect();
    if parts.is_empty() {
        parts.push("全て応需可".into());
    }
    if let Some(b) = s.beds {
        parts.push(format!("空床 {b}"));
    }
    if !s.note.is_empty() {
        parts.push(s.note.clone());
    }
    parts.join("・")
}

async fn home_page<S: EmsStore>(ems: &Ems<S>, st: &Staff, message: Option<String>) -> Response {
    let result = async {
        let current = ems
            .store
            .hospital_statuses(st.bureau.id)
            .await?
            .into_iter()
            .find(|s| s.hospital_id == st.hospital.id);
        let history = ems
            .store
            .hospital_status_history(st.bureau.id, &st.hospital.id, 10)
            .await?;
        let criteria = Criteria::shared()
            .map_err(|e| EmsError::Malformed(e.to_string()))?
            .with_stale_after(ems.status_stale_after_minutes);
        let now = ems.now();
        Ok::<_, EmsError>(HomePage {
            csrf: st.csrf.clone(),
            hospital: st.hospital.name.clone(),
            user: st.session.account.display_name.clone(),
            bureau: st.bureau.name.clone(),
            message,
            rows: st
                .hospital
                .capabilities
                .iter()
                .map(|c| StatusRow {
                    capability: c.as_str(),
                    label: c.label_ja(),
                    current: Acceptance::as_str(
                        current
                            .as_ref()
                            .and_then(|s| s.acceptance(*c))
                            .unwrap_or(Acceptance::Accepting),
                    ),
                })
                .collect(),
            choices: Acceptance::ALL.map(|a| (a.as_str(), a.label_ja())),
            beds: current
                .as_ref()
                .and_then(|s| s.beds)
                .map(|b| b.to_string())
                .unwrap_or_default(),
            note: current.as_ref().map(|s| s.note.clone()).unwrap_or_default(),
            updated: current.as_ref().map(|s| {
                format!(
                    "{}（{}分前）",
                    myna_web::jst_time(s.updated_at.timestamp_millis()),
                    s.age_minutes(now)
                )
            }),
            stale: current.as_ref().is_none_or(|s| s.is_stale(now, &criteria)),
            stale_after: criteria.costs.stale_after_minutes,
            history: history
                .iter()
                .map(|c| HistoryRow {
                    at: myna_web::jst_time(c.status.updated_at.timestamp_millis()),
                    summary: status_summary(&c.status),
                })
                .collect(),
        })
    }
    .await;
    match result {
        Ok(p) => myna_web::page(&p),
        Err(e) => e.into_response(),
    }
}

async fn home<S: EmsStore>(State(ems): St<S>, st: Staff) -> Response {
    home_page(&ems, &st, None).await
}

/// Largest bed count and note a hospital may set.
const MAX_BEDS: u32 = 999;
const MAX_NOTE_CHARS: usize = 200;

async fn set_status<S: EmsStore>(
    State(ems): St<S>,
    st: Staff,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut capabilities: Vec<(Capability, Acceptance)> = Vec::new();
    for c in &st.hospital.capabilities {
        let chosen = form
            .get(&format!("cap.{}", c.as_str()))
            .and_then(|v| Acceptance::parse(v));
        match chosen {
            Some(a) => capabilities.push((*c, a)),
            None => {
                return home_page(
                    &ems,
                    &st,
                    Some(format!("{}の応需を選んでください", c.label_ja())),
                )
                .await;
            }
        }
    }
    let beds = match form.get("beds").map(|b| b.trim()).unwrap_or("") {
        "" => None,
        b => match b.parse::<u32>().ok().filter(|n| *n <= MAX_BEDS) {
            Some(n) => Some(n),
            None => {
                return home_page(
                    &ems,
                    &st,
                    Some(format!("空床数は0〜{MAX_BEDS}の数字で入力してください")),
                )
                .await;
            }
        },
    };
    let note = form.get("note").map(|n| n.trim()).unwrap_or("").to_owned();
    if note.chars().count() > MAX_NOTE_CHARS {
        return home_page(
            &ems,
            &st,
            Some(format!("備考は{MAX_NOTE_CHARS}文字以内にしてください")),
        )
        .await;
    }
    let status = HospitalStatus {
        hospital_id: st.hospital.id.clone(),
        capabilities,
        beds,
        note,
        updated_at: ems.now(),
    };
    if let Err(e) = ems
        .store
        .set_hospital_status(
            st.bureau.id,
            StatusChange {
                status,
                account: st.session.account.id,
            },
        )
        .await
    {
        return EmsError::from(e).into_response();
    }
    home_page(&ems, &st, Some("応需情報を更新しました".into())).await
}

/// Where the patient is on the way here.
fn progress_ja(v: &IncidentView) -> &'static str {
    if v.handoff.is_some() {
        "引継ぎ済"
    } else if v.phase_at(Phase::HospitalArrival).is_some() {
        "病着"
    } else if v.phase_at(Phase::Departure).is_some() {
        "搬送中"
    } else {
        "現場（出発前）"
    }
}

/// The expected arrival: the model's driving time from the incident's ward to the hospital,
/// counted from 現発 once the crew left, else from now.
fn eta_ja(v: &IncidentView, hospital: &Hospital, now_ms: i64) -> String {
    let Ok(criteria) = Criteria::shared() else {
        return String::new();
    };
    let minutes = criteria.eta_minutes(incident_origin(&v.location), hospital.location);
    match (
        v.handoff.is_some(),
        v.phase_at(Phase::HospitalArrival),
        v.phase_at(Phase::Departure),
    ) {
        (true, _, _) => String::new(),
        (_, Some(at), _) => format!("病着 {}", myna_web::jst_time(at.at_ms)),
        (_, None, Some(left)) => format!(
            "到着予定 {}（約{minutes}分）",
            myna_web::jst_time(left.at_ms + i64::from(minutes) * 60_000)
        ),
        (_, None, None) => format!(
            "現場出発前・搬送 約{minutes}分（{}頃）",
            myna_web::jst_time(now_ms + i64::from(minutes) * 60_000)
        ),
    }
}

/// The bureau's recent incidents whose destination is the staff's hospital.
async fn destined_here<S: EmsStore>(
    ems: &Ems<S>,
    st: &Staff,
) -> Result<Vec<IncidentRecord>, EmsError> {
    let mut records = ems
        .store
        .incidents(
            st.bureau.id,
            IncidentFilter {
                open_only: false,
                team: None,
                limit: RECENT_INCIDENTS,
            },
        )
        .await?;
    records.retain(|r| r.log.destination().as_deref() == Some(st.hospital.id.as_str()));
    Ok(records)
}

struct IncomingRow {
    view: IncidentView,
    progress: &'static str,
    eta: String,
}

#[derive(Template)]
#[template(path = "hospital_list.html")]
struct ListFragment {
    incoming: Vec<IncomingRow>,
}

async fn list<S: EmsStore>(State(ems): St<S>, st: Staff) -> Response {
    let result = async {
        let teams = ems.store.teams(st.bureau.id).await?;
        let records = destined_here(&ems, &st).await?;
        let now = ems.now();
        let mut incoming: Vec<IncomingRow> = records
            .iter()
            .map(|r| {
                let view = incident_view(r, &teams, now);
                IncomingRow {
                    progress: progress_ja(&view),
                    eta: eta_ja(&view, &st.hospital, now.timestamp_millis()),
                    view,
                }
            })
            .collect();
        // Patients still to come first, then by the time they were sent here.
        incoming.sort_by_key(|r| {
            (
                r.view.handoff.is_some(),
                std::cmp::Reverse(r.view.destination.as_ref().map_or(0, |d| d.at_ms)),
            )
        });
        Ok::<_, EmsError>(ListFragment { incoming })
    }
    .await;
    match result {
        Ok(f) => myna_web::page(&f),
        Err(e) => e.into_response(),
    }
}

struct VitalRow {
    label: &'static str,
    value: String,
}

fn vital_rows(v: &Vitals) -> Vec<VitalRow> {
    VitalSign::ALL
        .into_iter()
        .map(|s| VitalRow {
            label: s.label_ja(),
            value: v
                .shown(s)
                .map_or_else(|| "—".to_owned(), |x| format!("{x} {}", Vitals::unit(s))),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "hospital_live.html")]
struct LiveFragment {
    view: IncidentView,
    progress: &'static str,
    eta: String,
    vitals: Vec<VitalRow>,
    vitals_at: Option<String>,
    /// More than one patient: the vitals are the incident's, whose is not recorded.
    several: bool,
    can_sign: bool,
    handoff: Option<(String, String)>,
    csrf: String,
}

fn live_fragment(view: IncidentView, st: &Staff, now_ms: i64) -> LiveFragment {
    let hospital = &st.hospital;
    LiveFragment {
        csrf: st.csrf.clone(),
        progress: progress_ja(&view),
        eta: eta_ja(&view, hospital, now_ms),
        vitals: view
            .vitals
            .as_ref()
            .map(|v| vital_rows(&v.vitals))
            .unwrap_or_default(),
        vitals_at: view.vitals.as_ref().map(|v| myna_web::jst_time(v.at_ms)),
        several: view.patients.len() > 1,
        can_sign: view.handoff.is_none() && view.phase_at(Phase::HospitalArrival).is_some(),
        handoff: view
            .handoff
            .as_ref()
            .map(|h| (h.received_by.clone(), myna_web::jst_time(h.at_ms))),
        view,
    }
}

/// Why the hospital may not read a patient's copy, in the staff's words.
fn refusal_ja(e: &IncidentError) -> &'static str {
    match e {
        IncidentError::ConsentWithdrawn => "傷病者が同意を撤回したため閲覧できません",
        IncidentError::ConsentRefused => "傷病者が同意を拒否したため閲覧できません",
        IncidentError::NotDestination => "この病院は（もう）この傷病者の搬送先ではありません",
        IncidentError::WindowPassed => "閲覧できる期間を過ぎました",
        _ => "救急隊の閲覧根拠（本人確認と同意）が現在の出場隊にないため閲覧できません",
    }
}

/// One patient's handoff copy as the hospital reads it, or why it may not.
struct PatientCopy {
    number: u32,
    basis: String,
    refused: Option<String>,
    sm: Option<EmergencySummary>,
    visit_groups: Vec<VisitGroup>,
    drug_groups: Vec<DrugGroup>,
}

#[derive(Template)]
#[template(path = "hospital_patient.html")]
struct PatientPage {
    hospital: String,
    user: String,
    live: LiveFragment,
    patients: Vec<PatientCopy>,
}

/// The lawful basis for the staff to read `copy` now (`Incident::may_hospital_view`); a
/// refusal leaves a trace.
fn basis<S: EmsStore>(
    ems: &Ems<S>,
    st: &Staff,
    record: &IncidentRecord,
    copy: &HandoffSnapshot,
) -> Result<Consent, IncidentError> {
    let window = chrono::Duration::seconds(st.bureau.view_window_s);
    let answer = record.log.may_hospital_view(
        &st.hospital.id,
        &copy.patient,
        &crate::api::view_key(copy.provider_access_id),
        ems.now(),
        window,
    );
    if let Err(reason) = &answer {
        tracing::warn!(
            bureau = %st.bureau.code,
            hospital = %st.hospital.id,
            staff = %st.session.account.login,
            incident = %record.number,
            patient = copy.patient_number,
            %reason,
            "hospital view refused"
        );
    }
    answer
}

/// Writes a staff member's view of a copy to the view log; called before the copy leaves ems.
async fn log_view<S: EmsStore>(
    ems: &Ems<S>,
    st: &Staff,
    record: &IncidentRecord,
    copy: &HandoffSnapshot,
    consent: Consent,
) -> Result<(), EmsError> {
    ems.store
        .record_view(ViewRecord {
            at_ms: ems.now_ms(),
            bureau: st.bureau.code.clone(),
            incident_number: record.number.clone(),
            team: copy.team.clone(),
            crew_member: st.session.account.login.clone(),
            terminal: 0,
            patient: copy.patient.clone(),
            patient_number: copy.patient_number,
            consent,
            view: copy.view,
            provider_access_id: copy.provider_access_id,
            hospital: Some(st.hospital.id.clone()),
        })
        .await?;
    // Queued with the entry; the relay reports it to the provider for the patient's history.
    ems.hospital_reads.notify_one();
    Ok(())
}

/// Patient `n`'s copy if the staff may read it now, with the basis, its view logged.
async fn readable_copy<S: EmsStore>(
    ems: &Ems<S>,
    st: &Staff,
    id: i64,
    n: u32,
) -> Result<(IncidentRecord, HandoffSnapshot, Consent), EmsError> {
    let record = own_patient(ems, st, id).await?;
    let copy = best_copies(ems.store.handoffs(st.bureau.id, id).await?)
        .into_iter()
        .find(|c| c.patient_number == n)
        .ok_or(EmsError::Rule(IncidentError::UnknownPatient))?;
    let consent = basis(ems, st, &record, &copy).map_err(EmsError::Rule)?;
    log_view(ems, st, &record, &copy, consent).await?;
    Ok((record, copy, consent))
}

/// Patient `n`'s handoff document (FHIR R4), its view logged.
async fn handoff_document<S: EmsStore>(
    ems: &Ems<S>,
    st: &Staff,
    id: i64,
    n: u32,
) -> Result<(String, serde_json::Value), EmsError> {
    let (record, copy, consent) = readable_copy(ems, st, id, n).await?;
    let bundle = handoff_bundle(&HandoffInput {
        incident_number: &record.number,
        bureau_code: &st.bureau.code,
        bureau_name: &st.bureau.name,
        team: &copy.team,
        crew_member: &copy.crew_member,
        hospital: &st.hospital,
        log: &record.log,
        patient_number: copy.patient_number,
        consent,
        provider_access_id: copy.provider_access_id,
        summary: &copy.summary,
        generated_at: ems.now(),
    });
    Ok((record.number, bundle))
}

fn attachment(mut resp: Response, content_type: &'static str, name: &str) -> Response {
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(content_type),
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        resp.headers_mut()
            .insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// The handoff document of patient `n` as FHIR R4 JSON.
async fn handoff_json<S: EmsStore>(
    State(ems): St<S>,
    st: Staff,
    Path((id, n)): Path<(i64, u32)>,
) -> Response {
    match handoff_document(&ems, &st, id, n).await {
        Ok((number, bundle)) => attachment(
            axum::Json(bundle).into_response(),
            "application/fhir+json",
            &format!("handoff-{number}-{n}.json"),
        ),
        Err(e) => e.into_response(),
    }
}

/// The printed handoff of patient `n`: an A4 PDF typeset from the same FHIR document.
async fn handoff_pdf<S: EmsStore>(
    State(ems): St<S>,
    st: Staff,
    Path((id, n)): Path<(i64, u32)>,
) -> Response {
    let result = async {
        let (number, bundle) = handoff_document(&ems, &st, id, n).await?;
        let today = crate::jst_date(ems.now());
        let pdf = tokio::task::spawn_blocking(move || {
            let fonts =
                myna_report::Fonts::system().map_err(|e| EmsError::Report(e.to_string()))?;
            myna_report::handoff_pdf(&bundle, fonts, today)
                .map(|(pdf, _)| pdf)
                .map_err(|e| EmsError::Report(e.to_string()))
        })
        .await
        .map_err(|e| EmsError::Report(e.to_string()))??;
        Ok::<_, EmsError>((number, pdf))
    }
    .await;
    match result {
        Ok((number, pdf)) => attachment(
            pdf.into_response(),
            "application/pdf",
            &format!("handoff-{number}-{n}.pdf"),
        ),
        Err(e) => e.into_response(),
    }
}

/// The copy passed on per patient: the 救急用サマリー only (DESIGN §3.7 gives the hospital
/// the summary, not the 全量版). There is one per patient: a later view replaces it.
fn best_copies(mut copies: Vec<HandoffSnapshot>) -> Vec<HandoffSnapshot> {
    copies.retain(|c| c.view == View::Summary);
    copies.sort_by_key(|c| c.patient_number);
    copies
}

async fn patient_page<S: EmsStore>(State(ems): St<S>, st: Staff, Path(id): Path<i64>) -> Response {
    let result = async {
        let record = own_patient(&ems, &st, id).await?;
        let teams = ems.store.teams(st.bureau.id).await?;
        let view = incident_view(&record, &teams, ems.now());
        let copies = best_copies(ems.store.handoffs(st.bureau.id, id).await?);
        let mut patients = Vec::new();
        for copy in copies {
            match basis(&ems, &st, &record, &copy) {
                Ok(consent) => {
                    log_view(&ems, &st, &record, &copy, consent).await?;
                    let sm = copy.summary;
                    patients.push(PatientCopy {
                        number: copy.patient_number,
                        basis: match consent.reason() {
                            None => "救急隊が本人の同意を得て閲覧".to_owned(),
                            Some(r) => format!("同意なし閲覧（{}）の引継ぎ", r.label_ja()),
                        },
                        refused: None,
                        visit_groups: group_visits(&sm.sections.visits, sm.as_of),
                        drug_groups: group_drugs(&sm.sections.dispensings, sm.as_of),
                        sm: Some(sm),
                    });
                }
                Err(reason) => patients.push(PatientCopy {
                    number: copy.patient_number,
                    basis: String::new(),
                    refused: Some(refusal_ja(&reason).to_owned()),
                    sm: None,
                    visit_groups: Vec::new(),
                    drug_groups: Vec::new(),
                }),
            }
        }
        Ok::<_, EmsError>(PatientPage {
            hospital: st.hospital.name.clone(),
            user: st.session.account.display_name.clone(),
            live: live_fragment(view, &st, ems.now_ms()),
            patients,
        })
    }
    .await;
    match result {
        Ok(p) => myna_web::page(&p),
        // Said in the staff's words on a page of its own, not as an API error.
        Err(EmsError::Rule(reason)) => (
            axum::http::StatusCode::FORBIDDEN,
            myna_web::page(&RefusedPage {
                hospital: st.hospital.name.clone(),
                reason: refusal_ja(&reason),
            }),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Template)]
#[template(path = "hospital_refused.html")]
struct RefusedPage {
    hospital: String,
    reason: &'static str,
}

#[derive(serde::Deserialize)]
struct ReceiptForm {
    received_by: String,
}

/// 引継ぎ受領: the doctor signs for the patient.
async fn receipt<S: EmsStore>(
    State(ems): St<S>,
    st: Staff,
    Path(id): Path<i64>,
    Form(f): Form<ReceiptForm>,
) -> Response {
    let result = async {
        own_patient(&ems, &st, id).await?;
        let kind = EventKind::Handoff {
            hospital: st.hospital.id.clone(),
            received_by: f.received_by.trim().to_owned(),
        };
        ems.record(st.bureau.id, id, kind, st.actor()).await
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/hospital/incidents/{id}")).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Server-sent `incident` events for incidents sent to this hospital (and one taken away from
/// it, so the list drops it). The session is re-checked every 10 s, so a sign-out or a
/// password reset ends the stream.
async fn stream<S: EmsStore>(
    State(ems): St<S>,
    st: Staff,
    headers: axum::http::HeaderMap,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = ems.subscribe();
    let tick = tokio::time::interval(ems.stream_recheck);
    // What the screen may show now: a change that takes one of these away is pushed too.
    let shown: HashSet<i64> = destined_here(&ems, &st)
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.id)
        .collect();
    let state = StreamState {
        rx,
        tick,
        ems: ems.clone(),
        headers,
        bureau: st.bureau.id,
        hospital: st.hospital.id,
        shown,
    };
    let events = futures_util::stream::unfold(Some(state), |state| async move {
        let mut s = state?;
        loop {
            tokio::select! {
                r = s.rx.recv() => match r {
                    Ok(Push::Changed(ch)) if ch.bureau == s.bureau => {
                        let ours = matches!(
                            s.ems.store.incident(s.bureau, ch.incident).await,
                            Ok(Some(r)) if r.log.destination().as_deref() == Some(s.hospital.as_str())
                        );
                        if ours || s.shown.contains(&ch.incident) {
                            // Nothing more after a sign-out, not even an incident number.
                            if staff(&s.ems, &s.headers).await.is_err() {
                                let ev = SseEvent::default().event("signed_out").data("ended");
                                return Some((Ok(ev), None));
                            }
                            if ours {
                                s.shown.insert(ch.incident);
                            } else {
                                s.shown.remove(&ch.incident);
                            }
                            let ev = SseEvent::default().event("incident").data(ch.incident.to_string());
                            return Some((Ok(ev), Some(s)));
                        }
                    }
                    Ok(Push::Changed(_)) => continue,
                    Ok(Push::Resync) | Err(RecvError::Lagged(_)) => {
                        let ev = SseEvent::default().event("incident").data("lagged");
                        return Some((Ok(ev), Some(s)));
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = s.tick.tick() => {
                    if staff(&s.ems, &s.headers).await.is_err() {
                        let ev = SseEvent::default().event("signed_out").data("ended");
                        return Some((Ok(ev), None));
                    }
                }
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

struct StreamState<S> {
    rx: tokio::sync::broadcast::Receiver<Push>,
    tick: tokio::time::Interval,
    ems: Arc<Ems<S>>,
    headers: axum::http::HeaderMap,
    bureau: i64,
    hospital: String,
    shown: HashSet<i64>,
}

/// Where a signed-in browser user belongs.
pub(crate) fn home_of(role: Role) -> &'static str {
    match role {
        Role::Hospital => "/hospital",
        Role::Admin | Role::Dispatcher => "/dispatch",
        Role::Crew => "/login",
        Role::PrivacyOfficer => "/review",
    }
}
