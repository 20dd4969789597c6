//! The desk UI, served by `ems`: dispatcher sign-in, the board (create an incident from a 119
//! call, assign a team, close), an incident's timeline, and the admin page (revoke a terminal,
//! reset a crew password). Server-rendered with askama; htmx refreshes the list on push.

use crate::error::EmsError;
use crate::sign_in::{ClientIp, SignInFrom};
use crate::wire::{IncidentView, incident_view};
use crate::{Change, DESK_SESSION, Ems, Push};
use askama::Template;
use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use myna_domain::hospitals::{incident_origin, station_point};
use myna_domain::incident::{Actor, ComplaintCategory, EventKind, Incident, Phase, TeamStatus};
use myna_domain::patient::PatientKey;
use myna_domain::summary::View;
use myna_domain::vitals::Vitals;
use myna_store::ems::{Bureau, EmsStore, IncidentFilter, NewEvent, Role, Session, Team};
use myna_store::hash_secret;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

type St<S> = State<Arc<Ems<S>>>;

pub fn routes<S: EmsStore>() -> Router<Arc<Ems<S>>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dispatch") }))
        .route("/login", get(login_page).post(login::<S>))
        .route("/logout", post(logout::<S>))
        .route("/dispatch", get(board::<S>))
        .route("/dispatch/list", get(list::<S>))
        .route("/dispatch/stream", get(stream::<S>))
        .route("/dispatch/incidents", post(create::<S>))
        .route("/dispatch/incidents/{id}", get(incident_page::<S>))
        .route("/dispatch/incidents/{id}/assign", post(assign::<S>))
        .route("/dispatch/incidents/{id}/close", post(close::<S>))
        .route("/admin", get(admin_page::<S>))
        .route("/admin/terminals/{id}/revoke", post(revoke::<S>))
        .route("/admin/enrollment-invites", post(open_invite::<S>))
        .route(
            "/admin/enrollment-invites/{id}/cancel",
            post(cancel_invite::<S>),
        )
        .route("/admin/enrollments/{id}/approve", post(approve::<S>))
        .route("/admin/enrollments/{id}/reject", post(reject::<S>))
        .route("/admin/password", post(reset::<S>))
        .route("/admin/unlock", post(unlock::<S>))
}

/// The signed-in desk user (dispatcher or admin) and their bureau. Extracting it redirects to
/// the login page when there is no such session.
pub(crate) struct Desk {
    pub(crate) session: Session,
    pub(crate) bureau: Bureau,
    /// The session's token for its forms (`myna_web::csrf`).
    pub(crate) csrf: String,
}

impl Desk {
    pub(crate) fn is_admin(&self) -> bool {
        self.session.account.role == Role::Admin
    }
}

impl<S: EmsStore> FromRequestParts<Arc<Ems<S>>> for Desk {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ems: &Arc<Ems<S>>) -> Result<Self, Response> {
        let (session, bureau, csrf) =
            screen_user(ems, parts, &[Role::Dispatcher, Role::Admin]).await?;
        Ok(Desk {
            session,
            bureau,
            csrf,
        })
    }
}

/// The browser user behind the session cookie, if their role is one of `roles`, with their
/// bureau and the session's form token (`myna_web::csrf`). Anyone else goes to their own
/// screen (`hospital::home_of`), or to the sign-in without a session.
pub(crate) async fn screen_user<S: EmsStore>(
    ems: &Ems<S>,
    parts: &Parts,
    roles: &[Role],
) -> Result<(Session, Bureau, String), Response> {
    let session = match ems.browser_session(&parts.headers).await {
        Ok(Some(s)) if roles.contains(&s.account.role) => s,
        Ok(Some(s)) => {
            return Err(Redirect::to(crate::hospital::home_of(s.account.role)).into_response());
        }
        Ok(None) => return Err(Redirect::to("/login").into_response()),
        Err(e) => return Err(e.into_response()),
    };
    match ems.store.bureau_by_id(session.account.bureau_id).await {
        Ok(Some(bureau)) => {
            let csrf = myna_web::cookie(&parts.headers, ems.session_cookie_name())
                .map(myna_web::csrf::token)
                .unwrap_or_default();
            Ok((session, bureau, csrf))
        }
        Ok(None) => Err(Redirect::to("/login").into_response()),
        Err(e) => Err(EmsError::from(e).into_response()),
    }
}

/// A desk user with the admin role.
struct AdminDesk(Desk);

impl<S: EmsStore> FromRequestParts<Arc<Ems<S>>> for AdminDesk {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ems: &Arc<Ems<S>>) -> Result<Self, Response> {
        let d = Desk::from_request_parts(parts, ems).await?;
        if d.session.account.role != Role::Admin {
            return Err(
                EmsError::Forbidden("the admin page needs an admin account").into_response()
            );
        }
        Ok(AdminDesk(d))
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<String>,
    bureau: String,
}

async fn login_page() -> Response {
    myna_web::page(&LoginPage {
        error: None,
        bureau: "kawasaki-fd".into(),
    })
}

#[derive(Deserialize)]
struct LoginForm {
    bureau: String,
    login: String,
    password: String,
}

/// The sign-in page again with what went wrong, in the status of the refusal.
fn refused_login(e: &EmsError, bureau: String) -> Response {
    let error = match e {
        EmsError::BadCredentials => "本部コード、ユーザーID、またはパスワードが違います".into(),
        EmsError::AccountLocked { until_ms } => format!(
            "ログインの失敗が続いたため、このユーザーIDは{}までロックされています。管理者に解除を依頼できます",
            jst_clock(*until_ms)
        ),
        EmsError::TooManyAttempts { retry_after_s } => {
            format!("ログインの試行が多すぎます。{retry_after_s}秒後にもう一度お試しください")
        }
        EmsError::Busy => "サーバーが混み合っています。もう一度お試しください".into(),
        _ => "ログインできませんでした。しばらくしてからもう一度お試しください".into(),
    };
    let mut resp = (
        e.status(),
        myna_web::page(&LoginPage {
            error: Some(error),
            bureau,
        }),
    )
        .into_response();
    if let Some(s) = e.retry_after_s() {
        resp.headers_mut().insert(header::RETRY_AFTER, s.into());
    }
    resp
}

/// `HH:MM` in Japan time.
fn jst_clock(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| (t + chrono::Duration::hours(9)).format("%H:%M").to_string())
        .unwrap_or_default()
}

async fn login<S: EmsStore>(
    State(ems): St<S>,
    ClientIp(ip): ClientIp,
    Form(f): Form<LoginForm>,
) -> Response {
    let code = f.bureau.trim();
    let bureau = match ems.store.bureau(code).await {
        Ok(b) => b,
        Err(e) => return EmsError::from(e).into_response(),
    };
    let signed_in = ems
        .sign_in(
            SignInFrom::Browser(ip),
            code,
            bureau.as_ref(),
            f.login.trim(),
            f.password,
            &[
                Role::Dispatcher,
                Role::Admin,
                Role::Hospital,
                Role::PrivacyOfficer,
            ],
        )
        .await;
    let account = match signed_in {
        Ok(a) => a,
        Err(e @ EmsError::Store(_)) => return e.into_response(),
        Err(e) => return refused_login(&e, f.bureau),
    };
    let token = myna_web::random_token();
    let expires = (ems.now() + DESK_SESSION).timestamp_millis();
    if let Err(e) = ems
        .store
        .create_session(hash_secret(&token), account.id, None, expires)
        .await
    {
        return EmsError::from(e).into_response();
    }
    let mut resp = Redirect::to(crate::hospital::home_of(account.role)).into_response();
    let cookie = myna_web::session_cookie(ems.session_cookie_name(), &token, ems.tls);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn logout<S: EmsStore>(State(ems): St<S>, headers: HeaderMap) -> Response {
    if let Some(token) = myna_web::cookie(&headers, ems.session_cookie_name()) {
        let _ = ems.store.end_session(&hash_secret(token)).await;
    }
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) =
        HeaderValue::from_str(&myna_web::clear_cookie(ems.session_cookie_name(), ems.tls))
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

fn category_value(c: ComplaintCategory) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "board.html")]
struct BoardPage {
    bureau_name: String,
    user_name: String,
    is_admin: bool,
    error: Option<String>,
    categories: Vec<(String, &'static str)>,
    teams: Vec<Team>,
    csrf: String,
}

fn board_page(d: &Desk, teams: Vec<Team>, error: Option<String>) -> BoardPage {
    BoardPage {
        bureau_name: d.bureau.name.clone(),
        user_name: d.session.account.display_name.clone(),
        is_admin: d.session.account.role == Role::Admin,
        error,
        categories: ComplaintCategory::ALL
            .into_iter()
            .map(|c| (category_value(c), c.label_ja()))
            .collect(),
        teams,
        csrf: d.csrf.clone(),
    }
}

async fn board<S: EmsStore>(State(ems): St<S>, d: Desk) -> Response {
    match ems.store.teams(d.bureau.id).await {
        Ok(teams) => myna_web::page(&board_page(&d, teams, None)),
        Err(e) => EmsError::from(e).into_response(),
    }
}

struct ListRow {
    view: IncidentView,
    phases: Vec<(&'static str, String)>,
    outcome: &'static str,
    /// For an unassigned incident: the teams to pick from, available ones nearest first.
    choices: Vec<(i64, String)>,
}

/// One line of the team board.
struct TeamRow {
    name: String,
    station: String,
    status: TeamStatus,
    incident: Option<(i64, String)>,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListFragment {
    incidents: Vec<ListRow>,
    team_rows: Vec<TeamRow>,
    csrf: String,
}

/// Each team's status from the open incident it is assigned to (the furthest along, if a
/// team holds more than one).
fn team_rows(teams: &[Team], open: &[myna_store::ems::IncidentRecord]) -> Vec<TeamRow> {
    teams
        .iter()
        .map(|t| {
            let busy = open
                .iter()
                .filter(|r| r.log.assigned_team() == Some(t.id))
                .map(|r| (r.log.team_status(), r))
                .max_by_key(|(s, _)| *s);
            TeamRow {
                name: t.name.clone(),
                station: t.station.clone(),
                status: busy.map_or(TeamStatus::Available, |(s, _)| s),
                incident: busy.map(|(_, r)| (r.id, r.number.clone())),
            }
        })
        .collect()
}

/// The teams to assign to an incident at `location`: available teams by straight-line
/// distance from their station, then the busy ones, each labelled.
fn choices(teams: &[Team], rows: &[TeamRow], location: &str) -> Vec<(i64, String)> {
    let from = incident_origin(location);
    let mut out: Vec<(bool, f64, i64, String)> = teams
        .iter()
        .zip(rows)
        .map(|(t, r)| {
            let km = station_point(&t.station).map_or(f64::MAX, |p| p.km_to(from));
            let free = r.status == TeamStatus::Available;
            let label = if km < f64::MAX {
                format!("{}（{}・{:.1}km）", t.name, r.status.label_ja(), km)
            } else {
                format!("{}（{}）", t.name, r.status.label_ja())
            };
            (!free, km, t.id, label)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    out.into_iter()
        .map(|(_, _, id, label)| (id, label))
        .collect()
}

fn outcome_label(v: &IncidentView) -> &'static str {
    v.outcome.map_or("未記録", |o| o.label_ja())
}

async fn list<S: EmsStore>(State(ems): St<S>, d: Desk) -> Response {
    let result = async {
        let teams = ems.store.teams(d.bureau.id).await?;
        let records = ems
            .store
            .incidents(
                d.bureau.id,
                IncidentFilter {
                    open_only: false,
                    team: None,
                    limit: 50,
                },
            )
            .await?;
        let open = ems
            .store
            .incidents(
                d.bureau.id,
                IncidentFilter {
                    open_only: true,
                    team: None,
                    limit: 1000,
                },
            )
            .await?;
        let team_rows = team_rows(&teams, &open);
        let incidents = records
            .iter()
            .map(|r| {
                let view = incident_view(r, &teams, ems.now());
                ListRow {
                    phases: view
                        .phases
                        .iter()
                        .map(|p| (p.phase.label_ja(), myna_web::jst_time(p.at_ms)))
                        .collect(),
                    outcome: outcome_label(&view),
                    choices: if view.team_id.is_none() && !view.closed {
                        choices(&teams, &team_rows, &view.location)
                    } else {
                        Vec::new()
                    },
                    view,
                }
            })
            .collect();
        Ok::<_, EmsError>(ListFragment {
            incidents,
            team_rows,
            csrf: d.csrf.clone(),
        })
    }
    .await;
    match result {
        Ok(f) => myna_web::page(&f),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct CreateForm {
    location: String,
    category: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    card_prep: Option<String>,
    #[serde(default)]
    team: String,
}

fn desk_actor(d: &Desk) -> Actor {
    Actor::Dispatcher {
        account: d.session.account.id,
    }
}

async fn create<S: EmsStore>(State(ems): St<S>, d: Desk, Form(f): Form<CreateForm>) -> Response {
    let teams = match ems.store.teams(d.bureau.id).await {
        Ok(t) => t,
        Err(e) => return EmsError::from(e).into_response(),
    };
    let bad = |msg: &str| {
        (
            StatusCode::BAD_REQUEST,
            myna_web::page(&board_page(&d, teams.clone(), Some(msg.to_owned()))),
        )
            .into_response()
    };
    let location = f.location.trim();
    if location.is_empty() || location.chars().count() > 200 {
        return bad("発生場所を200文字以内で入力してください");
    }
    if f.note.chars().count() > 1000 {
        return bad("通報内容は1000文字以内で入力してください");
    }
    let Some(category) = ComplaintCategory::ALL
        .into_iter()
        .find(|c| category_value(*c) == f.category)
    else {
        return bad("主訴区分を選んでください");
    };
    let team = match f.team.trim() {
        "" => None,
        t => match t
            .parse::<i64>()
            .ok()
            .filter(|id| teams.iter().any(|x| x.id == *id))
        {
            Some(id) => Some(id),
            None => return bad("この本部の救急隊を選んでください"),
        },
    };
    let now = ems.now_ms();
    let created = NewEvent {
        kind: EventKind::Created {
            location: location.to_owned(),
            category,
            note: f.note.trim().to_owned(),
            card_prep_requested: f.card_prep.is_some(),
        },
        actor: desk_actor(&d),
        idempotency_key: myna_web::random_token(),
        device_at_ms: None,
        team_guard: None,
    };
    let record = match ems.store.create_incident(d.bureau.id, created, now).await {
        Ok(r) => r,
        Err(e) => return EmsError::from(e).into_response(),
    };
    if let Some(team) = team
        && let Err(e) = assign_team(&ems, &d, record.id, team).await
    {
        return e.into_response();
    }
    ems.notify(Change {
        bureau: d.bureau.id,
        incident: record.id,
        teams: team.into_iter().collect(),
    });
    Redirect::to("/dispatch").into_response()
}

async fn assign_team<S: EmsStore>(
    ems: &Ems<S>,
    d: &Desk,
    incident: i64,
    team: i64,
) -> Result<(), EmsError> {
    ems.record(
        d.bureau.id,
        incident,
        EventKind::Assigned { team },
        desk_actor(d),
    )
    .await
}

#[derive(Deserialize)]
struct AssignForm {
    team: String,
}

async fn assign<S: EmsStore>(
    State(ems): St<S>,
    d: Desk,
    Path(id): Path<i64>,
    Form(f): Form<AssignForm>,
) -> Response {
    let teams = match ems.store.teams(d.bureau.id).await {
        Ok(t) => t,
        Err(e) => return EmsError::from(e).into_response(),
    };
    let Some(team) = f
        .team
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|id| teams.iter().any(|t| t.id == *id))
    else {
        return EmsError::Malformed("not a team of this bureau".into()).into_response();
    };
    match assign_team(&ems, &d, id, team).await {
        Ok(()) => Redirect::to("/dispatch").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn close<S: EmsStore>(State(ems): St<S>, d: Desk, Path(id): Path<i64>) -> Response {
    match ems
        .record(d.bureau.id, id, EventKind::Closed, desk_actor(&d))
        .await
    {
        Ok(()) => Redirect::to("/dispatch").into_response(),
        Err(e) => e.into_response(),
    }
}

struct EventRow {
    seq: u32,
    at: String,
    what: String,
    who: String,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage {
    view: IncidentView,
    outcome: &'static str,
    events: Vec<EventRow>,
}

/// One timeline line. Patients appear as 傷病者N, their place in the incident; neither the
/// certificate serial nor its keyed hash is shown.
fn describe(kind: &EventKind, teams: &[Team], log: &Incident) -> String {
    let who = |p: &PatientKey| {
        log.patient_number(p)
            .map_or_else(|| "傷病者?".to_owned(), |n| format!("傷病者{n}"))
    };
    match kind {
        EventKind::Created { .. } => "覚知（事案作成）".into(),
        EventKind::Assigned { team } => format!(
            "指令: {}",
            teams
                .iter()
                .find(|t| t.id == *team)
                .map_or("?", |t| t.name.as_str())
        ),
        EventKind::Phase { phase } => phase_label(*phase).into(),
        EventKind::IdentityConfirmed { patient } => {
            format!("{} 本人確認（顔写真一致）", who(patient))
        }
        EventKind::Consent { patient, consent } => match consent.reason() {
            None => format!("{} 同意取得", who(patient)),
            Some(r) => format!("{} 同意なし閲覧（{}）", who(patient), r.label_ja()),
        },
        EventKind::ConsentWithdrawn { patient } => format!("{} 同意撤回", who(patient)),
        EventKind::ConsentRefused { patient } => format!("{} 同意拒否", who(patient)),
        EventKind::SummaryViewed { patient, view } => format!(
            "{} {}閲覧",
            who(patient),
            match view {
                View::Summary => "救急用サマリー",
                View::Full => "救急用サマリー（全量版）",
            }
        ),
        EventKind::Outcome { outcome } => format!("マイナ救急の結果: {}", outcome.label_ja()),
        EventKind::Inquiry {
            hospital,
            result,
            reason,
        } => format!(
            "照会: {} {}{}",
            crate::wire::hospital_name(hospital),
            result.label_ja(),
            reason.map_or(String::new(), |r| format!("（{}）", r.label_ja()))
        ),
        EventKind::Vitals { vitals } => format!(
            "バイタル: {}",
            myna_domain::vitals::VitalSign::ALL
                .into_iter()
                .filter_map(|v| vitals.shown(v).map(|x| format!(
                    "{} {x}{}",
                    v.label_ja(),
                    Vitals::unit(v)
                )))
                .collect::<Vec<_>>()
                .join("、")
        ),
        EventKind::Destination { hospital, patients } => format!(
            "搬送先決定: {}（{}）",
            crate::wire::hospital_name(hospital),
            if patients.is_empty() {
                "カード読取なし".to_owned()
            } else {
                patients.iter().map(who).collect::<Vec<_>>().join("・")
            }
        ),
        EventKind::Handoff {
            hospital,
            received_by,
        } => format!(
            "引継ぎ受領: {}（{}）",
            crate::wire::hospital_name(hospital),
            received_by
        ),
        EventKind::Closed => "事案終了".into(),
    }
}

fn phase_label(p: Phase) -> &'static str {
    p.label_ja()
}

async fn incident_page<S: EmsStore>(State(ems): St<S>, d: Desk, Path(id): Path<i64>) -> Response {
    let result = async {
        let teams = ems.store.teams(d.bureau.id).await?;
        let record = ems
            .store
            .incident(d.bureau.id, id)
            .await?
            .ok_or(EmsError::IncidentNotFound)?;
        let view = incident_view(&record, &teams, ems.now());
        let events = record
            .log
            .events
            .iter()
            .map(|e| EventRow {
                seq: e.seq,
                at: match e.device_at {
                    // Shown when the tap reached ems later than it was made (queued offline).
                    Some(dev) if (e.at - dev).num_milliseconds().abs() >= 1000 => format!(
                        "{}（端末 {}）",
                        myna_web::jst_time(e.at.timestamp_millis()),
                        myna_web::jst_time(dev.timestamp_millis())
                    ),
                    _ => myna_web::jst_time(e.at.timestamp_millis()),
                },
                what: describe(&e.kind, &teams, &record.log),
                who: match &e.actor {
                    Actor::Dispatcher { .. } => "指令員".into(),
                    Actor::Hospital { hospital, .. } => crate::wire::hospital_name(hospital),
                    Actor::Crew { terminal, team, .. } => format!(
                        "{}（端末 {terminal}）",
                        teams
                            .iter()
                            .find(|t| t.id == *team)
                            .map_or("救急隊", |t| t.name.as_str())
                    ),
                },
            })
            .collect();
        Ok::<_, EmsError>(IncidentPage {
            outcome: outcome_label(&view),
            view,
            events,
        })
    }
    .await;
    match result {
        Ok(p) => myna_web::page(&p),
        Err(e) => e.into_response(),
    }
}

/// The desk's push stream. The session is checked again before every event and every
/// `Ems::stream_recheck`, so a sign-out, an expiry or a password reset ends the stream with
/// `signed_out` (the page then goes to the sign-in).
async fn stream<S: EmsStore>(
    State(ems): St<S>,
    d: Desk,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Response> {
    use tokio::sync::broadcast::error::RecvError;
    let bureau = d.bureau.id;
    let rx = ems.subscribe();
    let tick = tokio::time::interval(ems.stream_recheck);
    let still_signed_in = move |ems: Arc<Ems<S>>, headers: HeaderMap| async move {
        matches!(
            ems.browser_session(&headers).await,
            Ok(Some(s)) if matches!(s.account.role, Role::Dispatcher | Role::Admin)
                && s.account.bureau_id == bureau
        )
    };
    let state = (rx, tick, ems.clone(), headers);
    let events = futures_util::stream::unfold(Some(state), move |state| async move {
        let (mut rx, mut tick, ems, headers) = state?;
        loop {
            let ev = tokio::select! {
                r = rx.recv() => match r {
                    Ok(Push::Changed(ch)) if ch.bureau == bureau => {
                        SseEvent::default().event("incident").data(ch.incident.to_string())
                    }
                    Ok(Push::Changed(_)) => continue,
                    Ok(Push::Resync) | Err(RecvError::Lagged(_)) => SseEvent::default().event("incident").data("lagged"),
                    Err(RecvError::Closed) => return None,
                },
                _ = tick.tick() => {
                    if still_signed_in(ems.clone(), headers.clone()).await {
                        continue;
                    }
                    let ev = SseEvent::default().event("signed_out").data("ended");
                    return Some((Ok(ev), None));
                }
            };
            if !still_signed_in(ems.clone(), headers.clone()).await {
                let ev = SseEvent::default().event("signed_out").data("ended");
                return Some((Ok(ev), None));
            }
            return Some((Ok(ev), Some((rx, tick, ems, headers))));
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    message: Option<String>,
    /// id, label, team, revoked, bound to a certificate
    terminals: Vec<(i64, String, String, bool, bool)>,
    /// Requests waiting for approval; empty without a device CA.
    enrollments: Vec<EnrollmentRow>,
    /// The bureau's teams (id, name), for an invitation's team.
    teams: Vec<(i64, String)>,
    /// An invitation's secret, shown once right after it was opened.
    new_invite: Option<(String, String)>,
    /// Invitations not yet used nor expired.
    open_invites: Vec<InviteRow>,
    enrollment_open: bool,
    sign_in_failures: Vec<FailureRow>,
    csrf: String,
}

/// A waiting enrollment, as the admin sees it.
struct EnrollmentRow {
    id: i64,
    team: String,
    label: String,
    code: String,
    from: String,
    at: String,
}

/// An open invitation, as the admin sees it.
struct InviteRow {
    id: i64,
    team: String,
    created_by: String,
    at: String,
    until: String,
}

/// An account with failed sign-ins, as the admin sees it.
struct FailureRow {
    login: String,
    display_name: String,
    failures: u32,
    /// When its lock ends, if it is locked now.
    locked_until: Option<String>,
}

async fn admin_view<S: EmsStore>(ems: &Ems<S>, d: &Desk, message: Option<String>) -> Response {
    admin_view_with(ems, d, message, None).await
}

async fn admin_view_with<S: EmsStore>(
    ems: &Ems<S>,
    d: &Desk,
    message: Option<String>,
    new_invite: Option<(String, String)>,
) -> Response {
    let result = async {
        let teams = ems.store.teams(d.bureau.id).await?;
        let terminals = ems
            .store
            .terminals(d.bureau.id)
            .await?
            .into_iter()
            .map(|t| {
                let team = teams
                    .iter()
                    .find(|x| x.id == t.team_id)
                    .map(|x| x.name.clone())
                    .unwrap_or_default();
                (t.id, t.label, team, t.revoked, t.certificate_bound)
            })
            .collect();
        let enrollments = ems
            .store
            .enrollments(d.bureau.id, true)
            .await?
            .into_iter()
            // Lapsed requests cannot be approved; the next request marks them rejected.
            .filter(|e| e.requested_ms >= ems.now_ms() - ems.enrollment_limits.pending_for_ms)
            .map(|e| EnrollmentRow {
                id: e.id,
                team: teams
                    .iter()
                    .find(|t| t.id == e.team_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
                at: jst_clock(e.requested_ms),
                label: e.label,
                code: e.code,
                from: e.requested_from,
            })
            .collect();
        let now_ms = ems.now_ms();
        let open_invites = ems
            .store
            .open_invites(d.bureau.id, now_ms)
            .await?
            .into_iter()
            .map(|i| InviteRow {
                id: i.id,
                team: teams
                    .iter()
                    .find(|t| t.id == i.team_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
                created_by: i.created_by,
                at: jst_clock(i.created_ms),
                until: jst_clock(i.expires_ms),
            })
            .collect();
        let sign_in_failures = ems
            .store
            .accounts_with_failures(d.bureau.id)
            .await?
            .into_iter()
            .map(|a| FailureRow {
                locked_until: a
                    .is_locked(now_ms)
                    .then(|| jst_clock(a.locked_until_ms.unwrap_or(now_ms))),
                login: a.login,
                display_name: a.display_name,
                failures: a.failed_logins,
            })
            .collect();
        Ok::<_, EmsError>(AdminPage {
            message,
            terminals,
            enrollments,
            teams: teams.into_iter().map(|t| (t.id, t.name)).collect(),
            new_invite,
            open_invites,
            enrollment_open: ems.device_ca.is_some(),
            sign_in_failures,
            csrf: d.csrf.clone(),
        })
    }
    .await;
    match result {
        Ok(p) => myna_web::page(&p),
        Err(e) => e.into_response(),
    }
}

async fn admin_page<S: EmsStore>(State(ems): St<S>, AdminDesk(d): AdminDesk) -> Response {
    admin_view(&ems, &d, None).await
}

async fn revoke<S: EmsStore>(
    State(ems): St<S>,
    AdminDesk(d): AdminDesk,
    Path(id): Path<i64>,
) -> Response {
    match ems.revoke_terminal(d.bureau.id, id).await {
        Ok(true) => {
            tracing::info!(terminal = id, admin = %d.session.account.login, "terminal revoked");
            admin_view(&ems, &d, Some(format!("端末 {id} を失効させました"))).await
        }
        Ok(false) => EmsError::Malformed("no such terminal in this bureau".into()).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct InviteForm {
    team: i64,
}

/// Opens an invitation for one of the bureau's teams and shows its secret once.
async fn open_invite<S: EmsStore>(
    State(ems): St<S>,
    AdminDesk(d): AdminDesk,
    Form(f): Form<InviteForm>,
) -> Response {
    if ems.device_ca.is_none() {
        return EmsError::EnrollmentUnavailable.into_response();
    }
    let login = d.session.account.login.clone();
    match crate::enroll::invite(ems.store.as_ref(), &d.bureau, f.team, &login, ems.now_ms()).await {
        Ok(Some(secret)) => {
            let team = match ems.store.teams(d.bureau.id).await {
                Ok(teams) => teams
                    .into_iter()
                    .find(|t| t.id == f.team)
                    .map(|t| t.name)
                    .unwrap_or_default(),
                Err(e) => return EmsError::from(e).into_response(),
            };
            tracing::info!(team = %team, admin = %login, "enrollment invitation opened");
            admin_view_with(&ems, &d, None, Some((team, secret))).await
        }
        Ok(None) => EmsError::Malformed("no such team in this bureau".into()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Cancels an open invitation of the bureau, e.g. one whose secret went to the wrong person.
async fn cancel_invite<S: EmsStore>(
    State(ems): St<S>,
    AdminDesk(d): AdminDesk,
    Path(id): Path<i64>,
) -> Response {
    match ems.store.cancel_invite(d.bureau.id, id, ems.now_ms()).await {
        Ok(true) => {
            tracing::info!(invite = id, admin = %d.session.account.login, "enrollment invitation cancelled");
            admin_view(&ems, &d, Some(format!("招待 {id} を取り消しました"))).await
        }
        Ok(false) => {
            admin_view(
                &ems,
                &d,
                Some(format!("招待 {id} は有効な招待ではありません")),
            )
            .await
        }
        Err(e) => EmsError::from(e).into_response(),
    }
}

async fn approve<S: EmsStore>(
    State(ems): St<S>,
    AdminDesk(d): AdminDesk,
    Path(id): Path<i64>,
) -> Response {
    let Some(ca) = ems.device_ca.clone() else {
        return EmsError::EnrollmentUnavailable.into_response();
    };
    let approved = crate::enroll::approve(
        ems.store.as_ref(),
        &ca,
        &d.bureau,
        id,
        ems.enrollment_limits,
        ems.now_ms(),
        crate::enroll::utc_today(ems.now()),
    )
    .await;
    match approved {
        Ok(Some(t)) => {
            tracing::info!(enrollment = id, terminal = t, admin = %d.session.account.login, "enrollment approved");
            admin_view(
                &ems,
                &d,
                Some(format!("申請 {id} を承認しました（端末 {t}）")),
            )
            .await
        }
        Ok(None) => {
            admin_view(
                &ems,
                &d,
                Some(format!("申請 {id} は承認待ちではありません")),
            )
            .await
        }
        Err(e) => e.into_response(),
    }
}

async fn reject<S: EmsStore>(
    State(ems): St<S>,
    AdminDesk(d): AdminDesk,
    Path(id): Path<i64>,
) -> Response {
    match ems
        .store
        .reject_enrollment(d.bureau.id, id, ems.now_ms())
        .await
    {
        Ok(true) => admin_view(&ems, &d, Some(format!("申請 {id} を却下しました"))).await,
        Ok(false) => {
            admin_view(
                &ems,
                &d,
                Some(format!("申請 {id} は承認待ちではありません")),
            )
            .await
        }
        Err(e) => EmsError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
struct UnlockForm {
    login: String,
}

async fn unlock<S: EmsStore>(
    State(ems): St<S>,
    AdminDesk(d): AdminDesk,
    Form(f): Form<UnlockForm>,
) -> Response {
    let login = f.login.trim();
    match ems.store.clear_sign_in_failures(d.bureau.id, login).await {
        Ok(true) => {
            tracing::info!(login, admin = %d.session.account.login, "sign-in lock cleared");
            admin_view(&ems, &d, Some(format!("{login} のロックを解除しました"))).await
        }
        Ok(false) => admin_view(&ems, &d, Some("そのユーザーIDはありません".into())).await,
        Err(e) => EmsError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
struct ResetForm {
    login: String,
    password: String,
}

async fn reset<S: EmsStore>(
    State(ems): St<S>,
    AdminDesk(d): AdminDesk,
    Form(f): Form<ResetForm>,
) -> Response {
    // Hospital staff are not the bureau's people: a desk admin who could set their password
    // could read patients in a hospital's name. Their operator resets them (`ems` CLI).
    match ems.store.account(d.bureau.id, f.login.trim()).await {
        Ok(Some(a)) if a.role == Role::Hospital => {
            return admin_view(
                &ems,
                &d,
                Some("病院職員のパスワードはここでは再設定できません".into()),
            )
            .await;
        }
        Ok(_) => {}
        Err(e) => return EmsError::from(e).into_response(),
    }
    if f.password.chars().count() < crate::MIN_PASSWORD_CHARS {
        return admin_view(
            &ems,
            &d,
            Some("パスワードは12文字以上にしてください".into()),
        )
        .await;
    }
    match crate::api::reset_password(&ems, d.bureau.id, f.login.trim(), &f.password).await {
        Ok(true) => {
            admin_view(
                &ems,
                &d,
                Some(format!("{} のパスワードを再設定しました", f.login.trim())),
            )
            .await
        }
        Ok(false) => admin_view(&ems, &d, Some("そのユーザーIDはありません".into())).await,
        Err(e) => e.into_response(),
    }
}
