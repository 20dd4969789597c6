//! 事後審査: the privacy officer's screen (`/review`). Every summary viewed without consent
//! (the exception) is listed from the hash-chained view log, with its incident's context; the
//! officer marks each justified or not, with a comment, and the decision is appended to the
//! hash-chained review log (`EmsStore::record_review`). Views older than the bureau's due age
//! still waiting are highlighted. The officer's role sees this screen and nothing else; no
//! other role sees it.

use crate::Ems;
use crate::error::EmsError;
use askama::Template;
use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use myna_domain::access::ChainedEntry;
use myna_domain::incident::{EventKind, Phase, ViewRecord};
use myna_domain::review::{ReviewDecision, ReviewRecord, check_decision, crew_report};
use myna_domain::stats::JST;
use myna_store::ChainPosition;
use myna_store::ems::{Bureau, EmsStore, Role, Session};
use serde::Deserialize;
use std::sync::Arc;

type St<S> = State<Arc<Ems<S>>>;

pub fn routes<S: EmsStore>() -> Router<Arc<Ems<S>>> {
    Router::new()
        .route("/review", get(queue::<S>))
        .route("/review/crew", get(crew::<S>))
        .route(
            "/review/{partition}/{seq}",
            get(detail::<S>).post(decide::<S>),
        )
        // What the officer reads names patients (by pseudonym) and crews.
        .layer(axum::middleware::map_response(
            |mut r: Response| async move {
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            },
        ))
}

/// The signed-in privacy officer and their bureau; any other role goes to its own screen.
struct Officer {
    session: Session,
    bureau: Bureau,
    csrf: String,
}

impl<S: EmsStore> FromRequestParts<Arc<Ems<S>>> for Officer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ems: &Arc<Ems<S>>) -> Result<Self, Response> {
        let (session, bureau, csrf) =
            crate::dispatch::screen_user(ems, parts, &[Role::PrivacyOfficer]).await?;
        Ok(Officer {
            session,
            bureau,
            csrf,
        })
    }
}

fn time_ja(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || "—".to_owned(),
        |t| t.with_timezone(&JST).format("%Y-%m-%d %H:%M").to_string(),
    )
}

fn reason_ja(v: &ViewRecord) -> &'static str {
    v.consent.reason().map_or("—", |r| r.label_ja())
}

struct QueueRow {
    href: String,
    at: String,
    incident: String,
    reason: &'static str,
    patient: String,
    team: String,
    crew: String,
    /// The decision's label, or None while it waits.
    decision: Option<&'static str>,
    age_days: i64,
    overdue: bool,
}

#[derive(Template)]
#[template(path = "review.html")]
struct QueuePage {
    bureau_name: String,
    user_name: String,
    csrf: String,
    due_days: i64,
    waiting: usize,
    overdue: usize,
    rows: Vec<QueueRow>,
}

/// The bureau's exception views with their decisions: waiting ones first (oldest first), then
/// the decided ones, newest first.
async fn queue<S: EmsStore>(State(ems): St<S>, o: Officer) -> Response {
    let (views, reviews) = match tokio::try_join!(
        ems.store.exception_views(&o.bureau.code),
        ems.store.reviews(&o.bureau.code)
    ) {
        Ok(x) => x,
        Err(e) => return EmsError::from(e).into_response(),
    };
    let decided: std::collections::HashMap<(i64, i64), ReviewDecision> = reviews
        .iter()
        .map(|r| ((r.entry.view_partition, r.entry.view_seq), r.entry.decision))
        .collect();
    let now_ms = ems.now().timestamp_millis();
    let due_days = ems.review_due_days;
    let mut rows: Vec<QueueRow> = views
        .iter()
        .map(|(at, e)| {
            let decision = decided.get(&(at.partition, at.seq)).map(|d| d.label_ja());
            let age_days = (now_ms - e.entry.at_ms).max(0) / 86_400_000;
            QueueRow {
                href: format!("/review/{}/{}", at.partition, at.seq),
                at: time_ja(e.entry.at_ms),
                incident: e.entry.incident_number.clone(),
                reason: reason_ja(&e.entry),
                patient: format!(
                    "傷病者{} ({})",
                    e.entry.patient_number,
                    e.entry.patient.short()
                ),
                team: e.entry.team.clone(),
                crew: e.entry.crew_member.clone(),
                decision,
                age_days,
                overdue: decision.is_none() && age_days >= due_days,
            }
        })
        .collect();
    rows.sort_by(|a, b| match (a.decision.is_some(), b.decision.is_some()) {
        (false, false) => a.at.cmp(&b.at),
        (true, true) => b.at.cmp(&a.at),
        (x, y) => x.cmp(&y),
    });
    myna_web::page(&QueuePage {
        bureau_name: o.bureau.name.clone(),
        user_name: o.session.account.display_name.clone(),
        csrf: o.csrf.clone(),
        due_days,
        waiting: rows.iter().filter(|r| r.decision.is_none()).count(),
        overdue: rows.iter().filter(|r| r.overdue).count(),
        rows,
    })
}

fn decision_of(
    reviews: &[ChainedEntry<ReviewRecord>],
    at: ChainPosition,
) -> Option<&ChainedEntry<ReviewRecord>> {
    reviews
        .iter()
        .find(|r| r.entry.view_partition == at.partition && r.entry.view_seq == at.seq)
}

#[derive(Template)]
#[template(path = "review_detail.html")]
struct DetailPage {
    bureau_name: String,
    user_name: String,
    csrf: String,
    href: String,
    view: ViewRecord,
    at: String,
    reason: &'static str,
    patient: String,
    /// The incident's context: the call, each phase with its time, the outcome.
    category: String,
    location: String,
    note: String,
    phases: Vec<(&'static str, String)>,
    /// Whether 傷病者接触 was recorded before the view.
    contact_before_view: bool,
    minutes_after_call: Option<i64>,
    decision: Option<(String, String, String, String)>,
    error: Option<String>,
}

/// The exception view at `(partition, seq)` of the officer's bureau, if there is one.
async fn find_view<S: EmsStore>(
    ems: &Ems<S>,
    o: &Officer,
    at: ChainPosition,
) -> Result<Option<ChainedEntry<ViewRecord>>, EmsError> {
    Ok(ems
        .store
        .exception_views(&o.bureau.code)
        .await?
        .into_iter()
        .find(|(p, _)| *p == at)
        .map(|(_, e)| e))
}

async fn detail_page<S: EmsStore>(
    ems: &Ems<S>,
    o: &Officer,
    at: ChainPosition,
    error: Option<String>,
) -> Response {
    let view = match find_view(ems, o, at).await {
        Ok(Some(v)) => v,
        Ok(None) => return (StatusCode::NOT_FOUND, "その閲覧記録はありません").into_response(),
        Err(e) => return e.into_response(),
    };
    let (incident, reviews) = match tokio::try_join!(
        ems.store
            .incident_by_number(o.bureau.id, &view.entry.incident_number),
        ems.store.reviews(&o.bureau.code)
    ) {
        Ok(x) => x,
        Err(e) => return EmsError::from(e).into_response(),
    };
    let log = incident.map(|r| r.log).unwrap_or_default();
    let call = log.call();
    let view_at = chrono::DateTime::from_timestamp_millis(view.entry.at_ms);
    let phases: Vec<(&'static str, String)> = log
        .phase_times()
        .into_iter()
        .map(|(p, t)| (p.label_ja(), time_ja(t.timestamp_millis())))
        .collect();
    // The server's time of the contact tap: a device time is the crew's to set.
    let contact_before_view = log.events.iter().any(|e| {
        e.kind
            == (EventKind::Phase {
                phase: Phase::Contact,
            })
            && view_at.is_some_and(|v| e.at <= v)
    });
    let minutes_after_call = log
        .created_at()
        .zip(view_at)
        .map(|(c, v)| (v - c).num_minutes());
    let decision = decision_of(&reviews, at).map(|r| {
        (
            r.entry.decision.label_ja().to_owned(),
            r.entry.comment.clone(),
            r.entry.officer.clone(),
            time_ja(r.entry.at_ms),
        )
    });
    myna_web::page(&DetailPage {
        bureau_name: o.bureau.name.clone(),
        user_name: o.session.account.display_name.clone(),
        csrf: o.csrf.clone(),
        href: format!("/review/{}/{}", at.partition, at.seq),
        at: time_ja(view.entry.at_ms),
        reason: reason_ja(&view.entry),
        patient: format!(
            "傷病者{} ({})",
            view.entry.patient_number,
            view.entry.patient.short()
        ),
        category: call.map_or("—".into(), |c| c.category.label_ja().to_owned()),
        location: call.map_or("—".into(), |c| c.location.to_owned()),
        note: call.map_or(String::new(), |c| c.note.to_owned()),
        phases,
        contact_before_view,
        minutes_after_call,
        decision,
        error,
        view: view.entry,
    })
}

async fn detail<S: EmsStore>(
    State(ems): St<S>,
    o: Officer,
    Path((partition, seq)): Path<(i64, i64)>,
) -> Response {
    detail_page(&ems, &o, ChainPosition { partition, seq }, None).await
}

#[derive(Deserialize)]
struct DecisionForm {
    decision: String,
    #[serde(default)]
    comment: String,
}

async fn decide<S: EmsStore>(
    State(ems): St<S>,
    o: Officer,
    Path((partition, seq)): Path<(i64, i64)>,
    Form(f): Form<DecisionForm>,
) -> Response {
    let at = ChainPosition { partition, seq };
    let view = match find_view(&ems, &o, at).await {
        Ok(Some(v)) => v,
        Ok(None) => return (StatusCode::NOT_FOUND, "その閲覧記録はありません").into_response(),
        Err(e) => return e.into_response(),
    };
    let Some(decision) = ReviewDecision::parse(&f.decision) else {
        return detail_page(&ems, &o, at, Some("判定を選んでください".into())).await;
    };
    let comment = f.comment.trim().to_owned();
    if let Err(e) = check_decision(&view.entry, decision, &comment) {
        let message = match e {
            myna_domain::review::ReviewError::CommentRequired => {
                "不適切とする場合は理由をコメントに書いてください"
            }
            myna_domain::review::ReviewError::CommentTooLong => "コメントは1000字までです",
            myna_domain::review::ReviewError::NotAnException => "同意なし閲覧ではありません",
            myna_domain::review::ReviewError::AlreadyReviewed => "この閲覧は審査済みです",
        };
        return detail_page(&ems, &o, at, Some(message.into())).await;
    }
    let record = ReviewRecord {
        at_ms: ems.now().timestamp_millis(),
        bureau: o.bureau.code.clone(),
        view_partition: at.partition,
        view_seq: at.seq,
        view_hash: hex::encode(view.hash),
        incident_number: view.entry.incident_number.clone(),
        officer: o.session.account.login.clone(),
        decision,
        comment,
    };
    match ems.store.record_review(record).await {
        Ok(Some(_)) => Redirect::to("/review").into_response(),
        Ok(None) => detail_page(&ems, &o, at, Some("この閲覧は審査済みです".into())).await,
        Err(e) => EmsError::from(e).into_response(),
    }
}

struct CrewRow {
    crew: String,
    team: String,
    views: u64,
    /// (count, share of the member's views or incidents, flagged)
    measures: Vec<(u64, String, bool)>,
    flagged: bool,
}

#[derive(Template)]
#[template(path = "review_crew.html")]
struct CrewPage {
    bureau_name: String,
    user_name: String,
    csrf: String,
    window_hours: i64,
    flagged: usize,
    rows: Vec<CrewRow>,
}

/// 閲覧状況の点検: every crew member's views of the bureau, with the measures that stand out
/// against the bureau flagged (`review::crew_report`).
async fn crew<S: EmsStore>(State(ems): St<S>, o: Officer) -> Response {
    let (views, times) = match tokio::try_join!(
        ems.store.view_records(&o.bureau.code, u32::MAX),
        ems.store.viewed_incident_times(o.bureau.id)
    ) {
        Ok(x) => x,
        Err(e) => return EmsError::from(e).into_response(),
    };
    let times: std::collections::HashMap<String, myna_domain::review::IncidentTimes> =
        times.into_iter().collect();
    let views: Vec<ViewRecord> = views.into_iter().map(|e| e.entry).collect();
    let report = crew_report(
        &views,
        |n| times.get(n).copied(),
        o.bureau.view_window_s.saturating_mul(1000),
    );
    let rows: Vec<CrewRow> = report
        .into_iter()
        .map(|r| {
            let share = |n: u64, of: u64| myna_domain::stats::percent(n, of);
            CrewRow {
                flagged: r.flags.iter().any(|f| *f),
                measures: vec![
                    (
                        r.exception_views,
                        share(r.exception_views, r.views),
                        r.flags[0],
                    ),
                    (
                        r.before_contact,
                        share(r.before_contact, r.views),
                        r.flags[1],
                    ),
                    (
                        r.multi_patient_incidents,
                        share(r.multi_patient_incidents, r.incidents),
                        r.flags[2],
                    ),
                    (r.late_views, share(r.late_views, r.views), r.flags[3]),
                ],
                crew: r.crew_member,
                team: r.team,
                views: r.views,
            }
        })
        .collect();
    myna_web::page(&CrewPage {
        bureau_name: o.bureau.name.clone(),
        user_name: o.session.account.display_name.clone(),
        csrf: o.csrf.clone(),
        window_hours: (o.bureau.view_window_s + 3599) / 3600,
        flagged: rows.iter().filter(|r| r.flagged).count(),
        rows,
    })
}
