//! The crew's screens, served by the terminal to the tablet's own browser. One page; htmx swaps
//! the screen fragment after every tap and on every pushed change. From card placement to the
//! summary the crew taps twice: "face matches" and "consent" (or the exception with its reason).

use crate::card::{CardState, certificate_b64};
use crate::messages::crew_message;
use crate::outbox::Queued;
use crate::state::CardStep;
use crate::sync::{refresh_all, set_link};
use crate::vitals_pad::{self, PadState, Tapped};
use crate::{Link, Notice, Terminal};
use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use myna_domain::access::{Consent, ExceptionReason};
use myna_domain::hospitals::{
    Criteria, HospitalStatus, RankRequest, Ranked, Registry, hospital_name, incident_origin, rank,
    ward_point,
};
use myna_domain::incident::{DeclineReason, InquiryResult};
use myna_domain::incident::{MynaOutcome, Phase};
use myna_domain::summary::{
    DrugGroup, EmergencySummary, VisitGroup, group_drugs, group_visits, kakaritsuke,
};
use myna_domain::vitals::{VitalSign, Vitals};
use myna_web::own_window::{self, Guard};
use myna_wire::View;
use myna_wire::terminal::{CrewEvent, ErrorCode, EventBody, IncidentView, PatientView};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

type St = State<Arc<Terminal>>;

/// The crew UI, behind `guard` (see `guard` for what it refuses).
pub fn router(t: Arc<Terminal>, guard: Arc<Guard>) -> Router {
    let app = Router::new()
        .route("/", get(shell))
        .route("/screen", get(screen))
        .route("/events", get(events))
        .route("/sign-in", post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/incidents/{id}/open", post(open))
        .route("/incidents/{id}/phase/{phase}", post(phase))
        .route("/incidents/{id}/face", post(face))
        .route("/incidents/{id}/consent", post(consent))
        .route("/incidents/{id}/refused", post(refused))
        .route("/incidents/{id}/outcome", post(outcome))
        .route("/incidents/{id}/inquiry", post(inquiry))
        .route("/incidents/{id}/destination", post(destination))
        .route("/incidents/{id}/vitals/open", post(vitals_open))
        .route("/incidents/{id}/vitals/record", post(vitals_record))
        .route("/incidents/{id}/vitals/cancel", post(vitals_cancel))
        .route("/incidents/{id}/full", post(full))
        .route("/incidents/{id}/reopen", post(reopen))
        .route("/incidents/{id}/patients/{n}/withdraw", post(withdraw))
        .route("/summary/close", post(close_summary))
        .route("/demo", get(demo_panel))
        .route("/demo/place/{card}", post(demo_place))
        .route("/demo/remove", post(demo_remove))
        .route("/healthz", get(|| async { "ok" }))
        .route(TERMINAL_JS_PATH, get(terminal_js))
        .merge(myna_web::static_routes())
        .with_state(t);
    own_window::guarded(app, guard)
}

const TERMINAL_JS_PATH: &str = "/static/terminal.js";
const TERMINAL_JS: &str = include_str!("../assets/terminal.js");

async fn terminal_js() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        TERMINAL_JS,
    )
        .into_response()
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

struct PhaseButton {
    code: &'static str,
    label: &'static str,
    state: &'static str,
    time: String,
    next: bool,
}

/// One patient line of the incident screen.
struct PatientLine {
    number: u32,
    status: String,
    can_withdraw: bool,
}

fn patient_line(p: &PatientView) -> PatientLine {
    let status = if p.withdrawn {
        "同意撤回".to_owned()
    } else if p.refused {
        "同意拒否".to_owned()
    } else {
        match p.consent {
            Some(Consent::Obtained) => "同意あり".to_owned(),
            Some(Consent::Exception { reason }) => format!("同意なし閲覧（{}）", reason.label_ja()),
            None if p.identity_confirmed => "本人確認済み・同意待ち".to_owned(),
            None => "カード読取".to_owned(),
        }
    };
    PatientLine {
        number: p.number,
        status: if p.viewed && !p.withdrawn {
            format!("{status}・閲覧済み")
        } else {
            status
        },
        can_withdraw: p.consent.is_some() && !p.withdrawn,
    }
}

#[derive(Template)]
#[template(path = "screen.html")]
struct ScreenTpl {
    notice: Option<Notice>,
    signed_in: bool,
    terminal_label: String,
    team_name: String,
    crew_name: String,
    link_state: &'static str,
    pending: usize,
    incident: Option<IncidentView>,
    incident_id: i64,
    phases: Vec<PhaseButton>,
    patients: Vec<PatientLine>,
    summary: Option<EmergencySummary>,
    /// 搬送先選定: every registry hospital ranked for this patient, with its reason.
    hospitals: Vec<Ranked>,
    /// Hospitals whose latest answer (delivered or queued) is an acceptance.
    accepted: Vec<String>,
    transport_choices: Vec<(String, String)>,
    /// The patients (`1,2`) already taken to the destination, as the choices write them.
    destination_patients: String,
    destination: Option<String>,
    destination_name: String,
    statuses_note: String,
    vitals: Vec<VitalsRow>,
    vitals_at: String,
    /// Where the ranking takes the crew to be (the ward of the incident's address).
    hospitals_from: String,
    /// 病院照会 so far, and FDMA's 搬送困難事案.
    inquiry_count: usize,
    difficult_transport: bool,
    decline_reasons: Vec<(&'static str, &'static str)>,
    /// The summary's visits and drugs, grouped as on every screen that shows a summary.
    visit_groups: Vec<VisitGroup>,
    drug_groups: Vec<DrugGroup>,
    /// 傷病者N of the summary on screen.
    summary_patient: u32,
    /// The card on the reader is the summary's: the full view may be asked for.
    can_show_full: bool,
    card_state: &'static str,
    card_what: String,
    card_next: String,
    card_detail: String,
    /// `face`, `consent`, `reopen`, `withdrawn` or `none`.
    step: &'static str,
    /// The serial of the card on the reader: taps name it.
    card_serial: String,
    step_patient: u32,
    waiting: Option<String>,
    outcome: Option<&'static str>,
    skip_outcomes: Vec<(&'static str, &'static str)>,
    reasons: Vec<(&'static str, &'static str)>,
    others: Vec<(i64, String, String)>,
}

#[derive(Template)]
#[template(path = "shell.html")]
struct ShellTpl {
    screen: String,
}

const CREW_PHASES: [Phase; 5] = [
    Phase::Arrival,
    Phase::Contact,
    Phase::InVehicle,
    Phase::Departure,
    Phase::HospitalArrival,
];

fn render_screen(t: &Terminal) -> String {
    let pending = t.outbox.pending().unwrap_or_default();
    let s = t.screen();
    let incident = s.current_incident().cloned();
    let incident_id = incident.as_ref().map_or(0, |i| i.id);
    let queued: Vec<(Phase, i64)> = pending
        .iter()
        .filter(|q| q.incident == incident_id)
        .filter_map(|q| match q.body.event {
            CrewEvent::Phase { phase } => Some((phase, q.body.device_at_ms.unwrap_or_default())),
            _ => None,
        })
        .collect();
    let mut latest: Option<Phase> = None;
    let phases = CREW_PHASES
        .iter()
        .map(|&p| {
            let done = incident.as_ref().and_then(|i| i.phase_at(p));
            let q = queued.iter().find(|(qp, _)| *qp == p);
            let (state, time) = match (done, q) {
                (Some(d), _) => ("done", myna_web::jst_time(d.at_ms)),
                (None, Some((_, at))) => ("queued", myna_web::jst_time(*at)),
                (None, None) => ("todo", String::new()),
            };
            if state != "todo" {
                latest = Some(p);
            }
            PhaseButton {
                code: p.as_str(),
                label: p.label_ja(),
                state,
                time,
                next: false,
            }
        })
        .collect::<Vec<_>>();
    let phases = phases
        .into_iter()
        .zip(CREW_PHASES)
        .map(|(mut b, p)| {
            b.next = latest.is_none_or(|l| p > l);
            b
        })
        .collect();
    let (card_state, card_what, card_next, card_detail) = match &s.card {
        CardState::Empty => ("empty", String::new(), String::new(), String::new()),
        CardState::Reading => ("reading", String::new(), String::new(), String::new()),
        CardState::Failed(f) => {
            let m = f.message_ja();
            (
                "failed",
                m.what.to_owned(),
                m.next.to_owned(),
                String::new(),
            )
        }
        CardState::Read(r) => (
            "read",
            String::new(),
            String::new(),
            format!("{} コマンド・{} ms", r.apdus, r.millis),
        ),
    };
    let held = s.visible_summary();
    let card_serial = match &s.card {
        CardState::Read(r) => Some(r.serial.as_str()),
        _ => None,
    };
    let (step, step_patient) = match s.card_step() {
        CardStep::NoCard => ("none", 0),
        CardStep::Face => ("face", 0),
        CardStep::Consent => ("consent", 0),
        CardStep::Reopen { patient } => ("reopen", patient),
        CardStep::Withdrawn { patient } => ("withdrawn", patient),
        CardStep::Refused { patient } => ("refused", patient),
    };
    let waiting = s.request.as_ref().map(|r| {
        if r.waiting_for_link {
            "通信待ち: 回線が戻ると自動で照会します（このまま処置を続けてください）".to_owned()
        } else {
            "照会中…".to_owned()
        }
    });
    let crew = s.crew.as_ref();
    let tpl = ScreenTpl {
        notice: s.notice.clone(),
        signed_in: crew.is_some(),
        terminal_label: String::new(),
        team_name: crew
            .map(|c| c.terminal.team_name.clone())
            .unwrap_or_default(),
        crew_name: crew.map(|c| c.crew_name.clone()).unwrap_or_default(),
        link_state: match s.link {
            Link::Unknown => "unknown",
            Link::Online => "online",
            Link::Offline { .. } => "offline",
        },
        pending: pending.len(),
        outcome: incident
            .as_ref()
            .and_then(|i| i.outcome)
            .map(MynaOutcome::label_ja),
        patients: incident
            .as_ref()
            .map(|i| i.patients.iter().map(patient_line).collect())
            .unwrap_or_default(),
        hospitals: incident
            .as_ref()
            .map(|i| {
                rank_hospitals(
                    i,
                    held.map(|h| &h.response.summary),
                    &s.hospital_statuses,
                    s.stale_after_minutes,
                )
            })
            .unwrap_or_default(),
        accepted: incident
            .as_ref()
            .filter(|i| i.handoff.is_none())
            .map(|i| accepted_hospitals(i, &pending))
            .unwrap_or_default(),
        transport_choices: incident.as_ref().map(transport_choices).unwrap_or_default(),
        destination_patients: incident
            .as_ref()
            .and_then(|i| i.destination.as_ref())
            .map(|d| {
                d.patients
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        destination: queued_destination(&pending, incident_id).or_else(|| {
            incident
                .as_ref()
                .and_then(|i| i.destination.as_ref())
                .map(|d| d.hospital.clone())
        }),
        destination_name: queued_destination(&pending, incident_id)
            .map(|h| hospital_name(&h))
            .or_else(|| {
                incident
                    .as_ref()
                    .and_then(|i| i.destination.as_ref())
                    .map(|d| d.hospital_name.clone())
            })
            .unwrap_or_default(),
        statuses_note: statuses_note(&s.hospital_statuses),
        vitals: incident
            .as_ref()
            .map(|i| vitals_rows(i, &pending, s.vitals_pad))
            .unwrap_or_default(),
        vitals_at: incident
            .as_ref()
            .and_then(|i| i.vitals.as_ref())
            .map(|v| format!("{} 記録（{}回）", myna_web::jst_time(v.at_ms), v.records))
            .unwrap_or_default(),
        hospitals_from: incident
            .as_ref()
            .and_then(|i| ward_point(&i.location))
            .map_or_else(
                || "位置不明（住所に区名がないため川崎区役所を仮定）".to_owned(),
                |(ward, _)| format!("{ward}役所付近"),
            ),
        inquiry_count: incident.as_ref().map_or(0, |i| i.inquiries.len()),
        difficult_transport: incident.as_ref().is_some_and(|i| i.difficult_transport),
        decline_reasons: DeclineReason::ALL
            .into_iter()
            .map(|r| (r.as_str(), r.label_ja()))
            .collect(),
        summary: held.map(|h| h.response.summary.clone()),
        visit_groups: held
            .map(|h| {
                group_visits(
                    &h.response.summary.sections.visits,
                    h.response.summary.as_of,
                )
            })
            .unwrap_or_default(),
        drug_groups: held
            .map(|h| {
                let sm = &h.response.summary;
                group_drugs(&sm.sections.dispensings, sm.as_of)
            })
            .unwrap_or_default(),
        summary_patient: held.map_or(0, |h| h.patient),
        can_show_full: held.is_some_and(|h| Some(h.serial.as_str()) == card_serial),
        others: s
            .incidents
            .iter()
            .filter(|i| Some(i.id) != s.current)
            .map(|i| (i.id, i.number.clone(), i.location.clone()))
            .collect(),
        incident,
        incident_id,
        phases,
        card_state,
        card_what,
        card_next,
        card_detail,
        step,
        step_patient,
        card_serial: card_serial.unwrap_or_default().to_owned(),
        waiting,
        skip_outcomes: [
            MynaOutcome::NoCard,
            MynaOutcome::NotAttemptedUrgency,
            MynaOutcome::NotAttemptedEnvironment,
            MynaOutcome::NotRegistered,
            MynaOutcome::ReaderFailure,
            MynaOutcome::NetworkFailure,
        ]
        .into_iter()
        .map(|o| (o.as_str(), o.label_ja()))
        .collect(),
        reasons: [
            ExceptionReason::Unconscious,
            ExceptionReason::AlteredConsciousness,
            ExceptionReason::UnableToCommunicate,
        ]
        .into_iter()
        .map(|r| (r.as_str(), r.label_ja()))
        .collect(),
    };
    tpl.render()
        .unwrap_or_else(|e| format!("<div class=\"banner error\">画面を表示できません: {e}</div>"))
}

fn fragment(t: &Terminal) -> Response {
    no_store(axum::response::Html(render_screen(t)).into_response())
}

async fn shell(State(t): St) -> Response {
    let screen = render_screen(&t);
    no_store(myna_web::page(&ShellTpl { screen }))
}

async fn screen(State(t): St) -> Response {
    fragment(&t)
}

async fn events(State(t): St) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = t.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        Some((Ok(SseEvent::default().event("redraw").data("changed")), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn touch(t: &Terminal) {
    t.screen().touch(Instant::now());
}

#[derive(Deserialize)]
struct SignInForm {
    login: String,
    password: String,
}

async fn sign_in(State(t): St, Form(f): Form<SignInForm>) -> Response {
    touch(&t);
    match t.ems.sign_in(f.login.trim(), &f.password).await {
        Ok(signed) => {
            let session = signed.session.clone();
            t.screen().signed_in(signed);
            set_link(&t, Link::Online);
            let _ = refresh_all(&t, &session).await;
            t.wake.notify_one();
        }
        Err(crate::ems_client::CallError::Refused { code, .. }) => {
            t.screen().notice = Some(Notice {
                error: true,
                text: crew_message(code).to_owned(),
            });
        }
        Err(crate::ems_client::CallError::Offline(detail)) => {
            set_link(&t, Link::Offline { detail });
            t.screen().notice = Some(Notice {
                error: true,
                text: "消防本部のサーバーに接続できません。回線を確認してください。".into(),
            });
        }
    }
    t.redraw();
    fragment(&t)
}

async fn sign_out(State(t): St) -> Response {
    let session = t.screen().session();
    if let Some(s) = session {
        // Ending the session at ems is best effort; locally it ends now either way.
        let _ = t.ems.sign_out(&s).await;
    }
    t.screen().end_shift(Notice {
        error: false,
        text: "サインアウトしました".into(),
    });
    t.redraw();
    fragment(&t)
}

async fn open(State(t): St, Path(id): Path<i64>) -> Response {
    touch(&t);
    t.screen().open(id);
    t.redraw();
    fragment(&t)
}

fn event_body(key: String, event: CrewEvent) -> EventBody {
    EventBody {
        idempotency_key: key,
        device_at_ms: Some(chrono::Utc::now().timestamp_millis()),
        event,
    }
}

/// Queues a crew event; durable before the crew sees it.
fn enqueue(t: &Terminal, id: i64, event: CrewEvent) -> Result<(), String> {
    t.screen().check_current(id)?;
    t.outbox
        .push(id, &event_body(myna_web::random_token(), event))
        .map_err(|e| format!("端末に保存できませんでした: {e}"))?;
    t.wake.notify_one();
    Ok(())
}

fn after(t: &Terminal, result: Result<(), String>) -> Response {
    if let Err(text) = result {
        t.screen().notice = Some(Notice { error: true, text });
    }
    t.redraw();
    fragment(t)
}

async fn phase(State(t): St, Path((id, phase)): Path<(i64, String)>) -> Response {
    touch(&t);
    let result = match Phase::parse(&phase) {
        Some(p) if CREW_PHASES.contains(&p) => enqueue(&t, id, CrewEvent::Phase { phase: p }),
        _ => Err("不明な操作です。".into()),
    };
    after(&t, result)
}

/// The card a tap was made for: the page names it, so a stale tap (the card was swapped since
/// the page was drawn) is refused instead of applied to the card now on the reader.
#[derive(Deserialize)]
struct CardForm {
    card: String,
}

/// Tap 1. Sent at once, so only the consent and the view are left for tap 2.
async fn face(State(t): St, Path(id): Path<i64>, Form(f): Form<CardForm>) -> Response {
    touch(&t);
    // One statement per lock: the screen's guard must be gone before `enqueue` takes it.
    let confirmed = t.screen().face_confirmed(id, &f.card);
    let result = confirmed.map_err(str::to_owned).and_then(|der| {
        enqueue(
            &t,
            id,
            CrewEvent::IdentityConfirmed {
                certificate: certificate_b64(&der),
            },
        )
    });
    if result.is_err() {
        t.screen().face_checked = false;
    }
    after(&t, result)
}

#[derive(Deserialize)]
struct ConsentForm {
    card: String,
    consent: String,
    #[serde(default)]
    reason: Option<String>,
}

/// Tap 2: the consent is queued and its summary request made under one lock, so the sync task
/// sends them together, as one request.
async fn consent(State(t): St, Path(id): Path<i64>, Form(f): Form<ConsentForm>) -> Response {
    touch(&t);
    let result = (|| {
        let consent = Consent::from_parts(&f.consent, f.reason.as_deref())
            .ok_or_else(|| "同意の区分が不明です。".to_owned())?;
        let key = myna_web::random_token();
        let mut s = t.screen();
        let Some(der) = s.consent_given(id, &f.card, key.clone())? else {
            return Ok(());
        };
        let event = CrewEvent::Consent {
            certificate: certificate_b64(&der),
            consent,
        };
        if let Err(e) = t.outbox.push(id, &event_body(key, event)) {
            s.request = None;
            return Err(format!("端末に保存できませんでした: {e}"));
        }
        Ok(())
    })();
    t.wake.notify_one();
    after(&t, result)
}

/// 同意拒否 for the card on the reader: recorded for that patient; no view follows.
async fn refused(State(t): St, Path(id): Path<i64>, Form(f): Form<CardForm>) -> Response {
    touch(&t);
    let refusal = t.screen().consent_refused(id, &f.card);
    let result = refusal.map_err(str::to_owned).and_then(|der| {
        enqueue(
            &t,
            id,
            CrewEvent::ConsentRefused {
                certificate: certificate_b64(&der),
            },
        )
    });
    after(&t, result)
}

#[derive(Deserialize)]
struct OutcomeForm {
    outcome: String,
}

async fn outcome(State(t): St, Path(id): Path<i64>, Form(f): Form<OutcomeForm>) -> Response {
    touch(&t);
    let parsed = MynaOutcome::ALL
        .into_iter()
        .find(|o| o.as_str() == f.outcome && *o != MynaOutcome::Viewed);
    let result = match parsed {
        Some(outcome) => enqueue(&t, id, CrewEvent::Outcome { outcome }),
        None => Err("不明な結果区分です。".into()),
    };
    after(&t, result)
}

/// Every registry hospital ranked for the incident's patient. Acceptance statuses are not
/// wired yet (the hospital screen that sets them is still to come), so each shows as unknown.
fn rank_hospitals(
    i: &IncidentView,
    summary: Option<&EmergencySummary>,
    statuses: &[HospitalStatus],
    stale_after_minutes: Option<i64>,
) -> Vec<Ranked> {
    let (Ok(registry), Ok(criteria)) = (Registry::shared(), Criteria::shared()) else {
        return Vec::new();
    };
    // Kawasaki's city hall stands in when the address names no ward.
    let from = incident_origin(&i.location);
    let alerts: Vec<String> = summary
        .map(|s| s.alerts.iter().map(|a| a.class.clone()).collect())
        .unwrap_or_default();
    let regular = summary
        .map(|s| kakaritsuke(&s.sections.visits, s.as_of))
        .unwrap_or_default();
    let declined: Vec<String> = i
        .inquiries
        .iter()
        .filter(|q| q.result == InquiryResult::Declined)
        .map(|q| q.hospital.clone())
        .collect();
    let criteria =
        stale_after_minutes.map_or_else(|| criteria.clone(), |m| criteria.with_stale_after(m));
    rank(
        registry,
        &criteria,
        &RankRequest {
            from,
            category: i.category,
            alert_classes: &alerts,
            kakaritsuke: &regular,
            declined: &declined,
            statuses: &statuses
                .iter()
                .map(|s| (s.hospital_id.clone(), s.clone()))
                .collect(),
            now: chrono::Utc::now(),
        },
    )
}

/// The queued events of this incident, in the order they will be delivered.
fn queued_events(pending: &[Queued], incident: i64) -> impl Iterator<Item = &CrewEvent> {
    pending
        .iter()
        .filter(move |q| q.incident == incident)
        .map(|q| &q.body.event)
}

fn queued_destination(pending: &[Queued], incident: i64) -> Option<String> {
    queued_events(pending, incident)
        .filter_map(|e| match e {
            CrewEvent::Destination { hospital, .. } => Some(hospital.clone()),
            _ => None,
        })
        .last()
}

/// Hospitals whose latest answer is an acceptance, counting queued answers after delivered
/// ones (the outbox delivers in order, so a queued 搬送先決定 follows its acceptance).
fn accepted_hospitals(i: &IncidentView, pending: &[Queued]) -> Vec<String> {
    let mut latest: Vec<(String, InquiryResult)> = Vec::new();
    let answers = i
        .inquiries
        .iter()
        .map(|q| (q.hospital.clone(), q.result))
        .chain(queued_events(pending, i.id).filter_map(|e| match e {
            CrewEvent::Inquiry {
                hospital, result, ..
            } => Some((hospital.clone(), *result)),
            _ => None,
        }));
    for (h, r) in answers {
        latest.retain(|(x, _)| *x != h);
        latest.push((h, r));
    }
    latest
        .into_iter()
        .filter(|(_, r)| *r == InquiryResult::Accepted)
        .map(|(h, _)| h)
        .collect()
}

/// One line saying how current the acceptance statuses are.
fn statuses_note(statuses: &[HospitalStatus]) -> String {
    match statuses.iter().map(|s| s.updated_at).max() {
        None => "応需情報: 病院からの登録なし（照会で確認してください）".to_owned(),
        Some(latest) => format!(
            "応需情報: {}病院が登録（最新 {}）",
            statuses.len(),
            myna_web::jst_time(latest.timestamp_millis())
        ),
    }
}

#[derive(Deserialize)]
struct HospitalForm {
    hospital: String,
    /// The patients taken there, `1,2`; empty when no card was read.
    #[serde(default)]
    patients: String,
}

/// The destination buttons of a hospital row: one for the only patient (or none read), else
/// one per patient and one for all. (label, patients as `1,2`).
fn transport_choices(i: &IncidentView) -> Vec<(String, String)> {
    let taken: Vec<u32> = i
        .patients
        .iter()
        .filter(|p| !p.withdrawn && !p.refused)
        .map(|p| p.number)
        .collect();
    let csv = |ns: &[u32]| ns.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    if taken.len() <= 1 {
        return vec![("搬送先に決定".to_owned(), csv(&taken))];
    }
    taken
        .iter()
        .map(|n| (format!("傷病者{n}を搬送"), n.to_string()))
        .chain(std::iter::once(("全員を搬送".to_owned(), csv(&taken))))
        .collect()
}

/// 搬送先決定: one tap on a hospital that accepted (checked here as ems will: its latest
/// answer, queued ones included, is an acceptance, and no handoff is signed).
async fn destination(State(t): St, Path(id): Path<i64>, Form(f): Form<HospitalForm>) -> Response {
    touch(&t);
    let pending = t.outbox.pending().unwrap_or_default();
    let allowed = t
        .screen()
        .current_incident()
        .filter(|i| i.id == id && i.handoff.is_none())
        .is_some_and(|i| accepted_hospitals(i, &pending).contains(&f.hospital));
    let patients: Result<Vec<u32>, _> = f
        .patients
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::parse::<u32>)
        .collect();
    let result = match (allowed, patients) {
        (true, Ok(patients)) => enqueue(
            &t,
            id,
            CrewEvent::Destination {
                hospital: f.hospital,
                patients,
            },
        ),
        (false, _) => Err(crew_message(ErrorCode::DestinationNotAccepted).to_owned()),
        (_, Err(_)) => Err("不明な操作です。".to_owned()),
    };
    after(&t, result)
}

/// One row of the vitals pad.
struct VitalsRow {
    code: &'static str,
    label: &'static str,
    latest: String,
    keys: Vec<(String, &'static str, u16)>,
    /// The opened range's buttons, between the two taps.
    opened: Vec<(String, u16)>,
    /// The systolic value chosen, while the diastolic one is asked.
    systolic: Option<u16>,
}

fn vitals_rows(i: &IncidentView, pending: &[Queued], pad: Option<PadState>) -> Vec<VitalsRow> {
    // What ems holds, with what is still queued on top (shown at once, sent when it can be).
    let latest = queued_events(pending, i.id)
        .filter_map(|e| match e {
            CrewEvent::Vitals { vitals } => Some(*vitals),
            _ => None,
        })
        .fold(
            i.vitals.as_ref().map(|v| v.vitals).unwrap_or_default(),
            Vitals::overlay,
        );
    let pad = pad.filter(|p| p.incident == i.id);
    VitalSign::ALL
        .into_iter()
        .map(|sign| {
            let here = pad.filter(|p| p.sign == sign);
            let systolic = here.and_then(|p| p.systolic);
            VitalsRow {
                code: sign.as_str(),
                label: sign.label_ja(),
                latest: latest
                    .shown(sign)
                    .map_or_else(|| "—".to_owned(), |v| format!("{v} {}", Vitals::unit(sign))),
                keys: vitals_pad::first_row(sign, systolic)
                    .into_iter()
                    .map(|k| (k.label, k.action.kind(), k.action.value()))
                    .collect(),
                opened: here
                    .and_then(|p| p.opened)
                    .map(|o| vitals_pad::second_row(sign, o, systolic))
                    .unwrap_or_default(),
                systolic,
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct VitalsForm {
    sign: String,
    value: u16,
}

/// Tap 1 on a range key: its exact values appear.
async fn vitals_open(State(t): St, Path(id): Path<i64>, Form(f): Form<VitalsForm>) -> Response {
    touch(&t);
    let result = match VitalSign::parse(&f.sign) {
        Some(sign) => {
            let mut s = t.screen();
            let systolic = s
                .vitals_pad
                .filter(|p| p.incident == id && p.sign == sign)
                .and_then(|p| p.systolic);
            s.vitals_pad = Some(PadState {
                incident: id,
                sign,
                opened: Some(f.value),
                systolic,
            });
            Ok(())
        }
        None => Err("不明な操作です。".to_owned()),
    };
    after(&t, result)
}

/// A value tap: the record is queued (or, for the systolic pressure, the diastolic is asked).
async fn vitals_record(State(t): St, Path(id): Path<i64>, Form(f): Form<VitalsForm>) -> Response {
    touch(&t);
    let Some(sign) = VitalSign::parse(&f.sign) else {
        return after(&t, Err("不明な操作です。".to_owned()));
    };
    let pad = t.screen().vitals_pad;
    let result = match vitals_pad::tap_value(id, sign, f.value, pad) {
        Tapped::AskDiastolic(next) => {
            t.screen().vitals_pad = Some(next);
            Ok(())
        }
        Tapped::Send(vitals) => match vitals.check() {
            Ok(()) => {
                t.screen().vitals_pad = None;
                enqueue(&t, id, CrewEvent::Vitals { vitals })
            }
            Err(_) => Err(crew_message(ErrorCode::VitalsOutOfRange).to_owned()),
        },
    };
    after(&t, result)
}

async fn vitals_cancel(State(t): St) -> Response {
    touch(&t);
    t.screen().vitals_pad = None;
    after(&t, Ok(()))
}

#[derive(Deserialize)]
struct InquiryForm {
    hospital: String,
    result: String,
    reason: Option<String>,
}

/// 病院照会: the crew's answer from a hospital, in one tap (受入可) or two (辞退, then the reason).
async fn inquiry(State(t): St, Path(id): Path<i64>, Form(f): Form<InquiryForm>) -> Response {
    touch(&t);
    let result = match f.result.as_str() {
        "accepted" => Some(InquiryResult::Accepted),
        "declined" => Some(InquiryResult::Declined),
        _ => None,
    };
    let reason = f.reason.as_deref().filter(|r| !r.is_empty());
    let event = match (result, reason.map(DeclineReason::parse)) {
        (Some(result), None) => Ok(CrewEvent::Inquiry {
            hospital: f.hospital,
            result,
            reason: None,
        }),
        (Some(result), Some(Some(reason))) => Ok(CrewEvent::Inquiry {
            hospital: f.hospital,
            result,
            reason: Some(reason),
        }),
        _ => Err("不明な照会結果です。".to_owned()),
    };
    after(&t, event.and_then(|e| enqueue(&t, id, e)))
}

/// A view of the card on the reader whose consent is recorded: the sync task sends it.
fn view_again(t: &Terminal, id: i64, card: &str, view: View) -> Response {
    touch(t);
    let result = t.screen().view_again(id, card, view).map_err(str::to_owned);
    t.wake.notify_one();
    after(t, result)
}

/// 「全量を表示」 for the summary on screen.
async fn full(State(t): St, Path(id): Path<i64>, Form(f): Form<CardForm>) -> Response {
    view_again(&t, id, &f.card, View::Full)
}

/// The card of a patient whose consent is recorded was placed again: one tap re-opens.
async fn reopen(State(t): St, Path(id): Path<i64>, Form(f): Form<CardForm>) -> Response {
    view_again(&t, id, &f.card, View::Summary)
}

/// 同意撤回: the patient's summary goes now; ems refuses every later view of them.
async fn withdraw(State(t): St, Path((id, n)): Path<(i64, u32)>) -> Response {
    touch(&t);
    let withdrawn = t.screen().consent_withdrawn(id, n);
    let result = withdrawn
        .map_err(str::to_owned)
        .and_then(|()| enqueue(&t, id, CrewEvent::ConsentWithdrawn { patient: n }));
    t.screen().notice = Some(match result {
        Ok(()) => Notice {
            error: false,
            text: format!("傷病者{n}の同意撤回を記録しました。情報を画面から消去しました。"),
        },
        Err(text) => Notice { error: true, text },
    });
    t.redraw();
    fragment(&t)
}

async fn close_summary(State(t): St) -> Response {
    touch(&t);
    t.screen().forget_patient();
    t.redraw();
    fragment(&t)
}

#[derive(Template)]
#[template(path = "demo.html")]
struct DemoTpl {
    latency_ms: u64,
    placed: Option<String>,
    cards: Vec<(String, String)>,
}

async fn demo_panel(State(t): St) -> Response {
    let Some(slot) = &t.demo else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            "this terminal uses a real card reader",
        )
            .into_response();
    };
    myna_web::page(&DemoTpl {
        latency_ms: 25,
        placed: slot.placed(),
        cards: slot
            .deck()
            .iter()
            .map(|c| (c.id.clone(), c.label.clone()))
            .collect(),
    })
}

async fn demo_place(State(t): St, Path(card): Path<String>) -> Response {
    let Some(slot) = &t.demo else {
        return (axum::http::StatusCode::NOT_FOUND, "no emulated reader").into_response();
    };
    match slot.place(&card) {
        Ok(()) => Redirect::to("/demo").into_response(),
        Err(e) => (axum::http::StatusCode::BAD_REQUEST, e).into_response(),
    }
}

async fn demo_remove(State(t): St) -> Response {
    if let Some(slot) = &t.demo {
        slot.remove();
    }
    Redirect::to("/demo").into_response()
}
