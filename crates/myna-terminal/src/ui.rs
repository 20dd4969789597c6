//! The crew's screens, served by the terminal to the tablet's own browser. One page; htmx swaps
//! the screen fragment after every tap and on every pushed change. From card placement to the
//! summary the crew taps twice: "face matches" and "consent" (or the exception with its reason).

use crate::card::CardState;
use crate::sync::{refresh_all, set_link};
use crate::{Link, Notice, SummaryRequest, Terminal};
use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use myna_domain::access::{Consent, ExceptionReason};
use myna_domain::incident::{EventKind, MynaOutcome, Phase};
use myna_domain::summary::{EmergencySummary, View};
use myna_ems::wire::{EventBody, IncidentView};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

type St = State<Arc<Terminal>>;

pub fn router(t: Arc<Terminal>) -> Router {
    Router::new()
        .route("/", get(shell))
        .route("/screen", get(screen))
        .route("/events", get(events))
        .route("/sign-in", post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/incidents/{id}/open", post(open))
        .route("/incidents/{id}/phase/{phase}", post(phase))
        .route("/incidents/{id}/face", post(face))
        .route("/incidents/{id}/consent", post(consent))
        .route("/incidents/{id}/outcome", post(outcome))
        .route("/incidents/{id}/full", post(full))
        .route("/summary/close", post(close_summary))
        .route("/demo", get(demo_panel))
        .route("/demo/place/{card}", post(demo_place))
        .route("/demo/remove", post(demo_remove))
        .route("/healthz", get(|| async { "ok" }))
        .merge(myna_web::static_routes())
        .with_state(t)
}

/// The crew-facing message for an `ems` error code.
pub fn crew_message(code: &str) -> &'static str {
    match code {
        "person_not_found" => {
            "該当する加入者が見つかりません（保険証利用登録がないカードの可能性があります）。口頭で聴取してください。"
        }
        "card_rejected" => {
            "このカードの証明書は使えません（失効・期限切れ等）。口頭で聴取してください。"
        }
        "wrong_team" => "この事案は他の隊に指令されています。この端末では閲覧できません。",
        "incident_closed" => "事案は終了しています。",
        "not_assigned" => "この事案はまだ指令されていません。",
        "window_passed" => "閲覧できる時間を過ぎています。",
        "no_consent" | "identity_not_confirmed" => {
            "本人確認と同意（または同意なしの理由）を先に記録してください。"
        }
        "phase_repeated" => "この時刻はすでに記録されています。",
        "phase_out_of_order" => "この時刻は順序が合わないため記録できません。",
        "outcome_repeated" => "マイナ救急の結果はすでに記録されています。",
        "provider_unavailable" => "全国の医療情報サービスに接続できません。自動で再試行します。",
        "storage_unavailable" => "消防本部のサーバーが一時的に使えません。自動で再試行します。",
        "terminal_revoked" => "この端末は失効しています。管理者に連絡してください。",
        "terminal_unknown" => "この端末は登録されていません。管理者に連絡してください。",
        "crew_signed_out" => "サインインし直してください（勤務交代・期限切れ）。",
        "bad_credentials" => "ユーザーIDまたはパスワードが違います。",
        _ => "処理できませんでした。もう一度操作してください。",
    }
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
    summary: Option<EmergencySummary>,
    card_state: &'static str,
    card_what: String,
    card_next: String,
    card_detail: String,
    waiting: Option<String>,
    face_checked: bool,
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

fn outcome_code(o: MynaOutcome) -> &'static str {
    match o {
        MynaOutcome::Viewed => "viewed",
        MynaOutcome::NotAttemptedUrgency => "not_attempted_urgency",
        MynaOutcome::NotAttemptedEnvironment => "not_attempted_environment",
        MynaOutcome::NoCard => "no_card",
        MynaOutcome::NotRegistered => "not_registered",
        MynaOutcome::ConsentRefused => "consent_refused",
        MynaOutcome::IdentityNotConfirmed => "identity_not_confirmed",
        MynaOutcome::ReaderFailure => "reader_failure",
        MynaOutcome::NetworkFailure => "network_failure",
        MynaOutcome::PersonNotFound => "person_not_found",
    }
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
    let incident = s
        .current
        .and_then(|id| s.incidents.iter().find(|i| i.id == id))
        .cloned();
    let incident_id = incident.as_ref().map_or(0, |i| i.id);
    let queued: Vec<(Phase, i64)> = pending
        .iter()
        .filter(|q| q.incident == incident_id)
        .filter_map(|q| match q.body.event {
            EventKind::Phase { phase } => Some((phase, q.body.device_at_ms.unwrap_or_default())),
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
    let summary = s
        .summary
        .as_ref()
        .filter(|h| Some(h.incident) == s.current)
        .map(|h| h.response.summary.clone());
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
        face_checked: s.face_checked,
        others: s
            .incidents
            .iter()
            .filter(|i| Some(i.id) != s.current)
            .map(|i| (i.id, i.number.clone(), i.location.clone()))
            .collect(),
        incident,
        incident_id,
        phases,
        summary,
        card_state,
        card_what,
        card_next,
        card_detail,
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
        .map(|o| (outcome_code(o), o.label_ja()))
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
    let mut s = t.screen();
    s.last_touch = Instant::now();
    s.notice = None;
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
            t.screen().crew = Some(signed);
            set_link(&t, Link::Online);
            let _ = refresh_all(&t, &session).await;
            t.wake.notify_one();
        }
        Err(crate::ems_client::CallError::Refused { code, .. }) => {
            t.screen().notice = Some(Notice {
                error: true,
                text: crew_message(&code).to_owned(),
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
    {
        let mut s = t.screen();
        if s.incidents.iter().any(|i| i.id == id) && s.current != Some(id) {
            s.current = Some(id);
            s.forget_patient();
        }
    }
    t.redraw();
    fragment(&t)
}

/// Queues a crew event for the current incident; durable before the crew sees it.
fn enqueue(t: &Terminal, id: i64, event: EventKind) -> Result<(), String> {
    {
        let s = t.screen();
        if s.crew.is_none() {
            return Err(crew_message("crew_signed_out").into());
        }
        if s.current != Some(id) {
            return Err("この事案は表示中ではありません。".into());
        }
    }
    let body = EventBody {
        idempotency_key: myna_web::random_token(),
        device_at_ms: Some(chrono::Utc::now().timestamp_millis()),
        event,
    };
    t.outbox
        .push(id, &body)
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
        Some(p) if CREW_PHASES.contains(&p) => enqueue(&t, id, EventKind::Phase { phase: p }),
        _ => Err("不明な操作です。".into()),
    };
    after(&t, result)
}

async fn face(State(t): St, Path(id): Path<i64>) -> Response {
    touch(&t);
    let has_card = matches!(t.screen().card, CardState::Read(_));
    let result = if has_card {
        enqueue(&t, id, EventKind::IdentityConfirmed).map(|()| t.screen().face_checked = true)
    } else {
        Err("カードを読み取ってから確認してください。".into())
    };
    after(&t, result)
}

#[derive(Deserialize)]
struct ConsentForm {
    consent: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn consent(State(t): St, Path(id): Path<i64>, Form(f): Form<ConsentForm>) -> Response {
    touch(&t);
    let result = (|| {
        let consent = Consent::from_parts(&f.consent, f.reason.as_deref())
            .ok_or_else(|| "同意の区分が不明です。".to_owned())?;
        let der = {
            let s = t.screen();
            if !s.face_checked {
                return Err("先に顔写真との照合を記録してください。".to_owned());
            }
            if s.request.is_some() {
                return Ok(());
            }
            match &s.card {
                CardState::Read(r) => r.der.clone(),
                _ => return Err("カードを読み取ってください。".to_owned()),
            }
        };
        enqueue(&t, id, EventKind::Consent { consent })?;
        t.screen().request = Some(SummaryRequest {
            incident: id,
            der,
            view: View::Summary,
            waiting_for_link: false,
        });
        t.wake.notify_one();
        Ok(())
    })();
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
        .find(|o| outcome_code(*o) == f.outcome && *o != MynaOutcome::Viewed);
    let result = match parsed {
        Some(outcome) => enqueue(&t, id, EventKind::Outcome { outcome }),
        None => Err("不明な結果区分です。".into()),
    };
    after(&t, result)
}

async fn full(State(t): St, Path(id): Path<i64>) -> Response {
    touch(&t);
    let result = {
        let mut s = t.screen();
        match (&s.card, s.current == Some(id), s.summary.is_some()) {
            (CardState::Read(r), true, true) => {
                s.request = Some(SummaryRequest {
                    incident: id,
                    der: r.der.clone(),
                    view: View::Full,
                    waiting_for_link: false,
                });
                Ok(())
            }
            (_, true, true) => Err("全量表示にはカードをもう一度置いてください。".into()),
            _ => Err("先に救急用サマリーを表示してください。".into()),
        }
    };
    t.wake.notify_one();
    after(&t, result)
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
