//! The terminal's background work: deliver the outbox in order, send a waiting summary request
//! once its incident's events are through, follow `ems`'s push stream, and drop the summary
//! after the idle timeout.

use crate::ems_client::{CallError, SseParser};
use crate::outbox::State;
use crate::{HeldSummary, Link, Notice, Terminal};
use base64::Engine;
use http_body_util::BodyExt;
use myna_domain::summary::View;
use myna_ems::wire::SummaryBody;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn start(t: Arc<Terminal>) {
    tokio::spawn(deliver_loop(t.clone()));
    tokio::spawn(stream_loop(t.clone()));
    tokio::spawn(idle_loop(t));
}

/// Longest pause between retries while the link is down.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

enum Progress {
    Idle,
    Worked,
    Offline,
}

async fn deliver_loop(t: Arc<Terminal>) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match deliver_once(&t).await {
            Progress::Worked => backoff = Duration::from_millis(250),
            Progress::Idle => {
                backoff = Duration::from_millis(250);
                tokio::select! {
                    _ = t.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
            Progress::Offline => {
                tokio::select! {
                    _ = t.wake.notified() => {}
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

pub(crate) fn set_link(t: &Terminal, link: Link) {
    let changed = {
        let mut s = t.screen();
        let changed = s.link != link;
        s.link = link;
        changed
    };
    if changed {
        t.redraw();
    }
}

/// Codes after which retrying cannot help until someone acts (sign in again, re-register).
fn is_auth_failure(code: &str) -> bool {
    matches!(
        code,
        "crew_signed_out" | "terminal_revoked" | "terminal_unknown"
    )
}

/// Codes that mean "try again later" although ems answered.
fn is_transient(code: &str) -> bool {
    matches!(code, "provider_unavailable" | "storage_unavailable")
}

pub(crate) fn auth_lost(t: &Terminal, code: &str) {
    t.screen().end_shift(Notice {
        error: true,
        text: crate::ui::crew_message(code).to_owned(),
    });
    t.redraw();
}

async fn deliver_once(t: &Terminal) -> Progress {
    let Some(session) = t.screen().session() else {
        return Progress::Idle;
    };
    match t.outbox.head() {
        Ok(Some(q)) => {
            return match t.ems.post_event(&session, q.incident, &q.body).await {
                Ok(_) => {
                    if let Err(e) = t.outbox.mark(q.id, State::Sent, None) {
                        tracing::error!(error = %e, "outbox");
                    }
                    set_link(t, Link::Online);
                    // Each round trip counts on a slow link: re-read the incident only once its
                    // queue has drained, and not when a summary request goes next (its answer
                    // triggers the re-read).
                    let drained = t.outbox.pending_for(q.incident).unwrap_or(0) == 0;
                    let summary_next = t
                        .screen()
                        .request
                        .as_ref()
                        .is_some_and(|r| r.incident == q.incident);
                    if drained && !summary_next {
                        refresh_incident(t, &session, q.incident).await;
                    } else {
                        t.redraw();
                    }
                    Progress::Worked
                }
                Err(CallError::Offline(detail)) => {
                    set_link(t, Link::Offline { detail });
                    Progress::Offline
                }
                Err(CallError::Refused { code, .. }) if is_auth_failure(&code) => {
                    auth_lost(t, &code);
                    Progress::Idle
                }
                Err(CallError::Refused { code, message, .. }) => {
                    tracing::warn!(%code, %message, "ems refused a queued event");
                    if let Err(e) = t.outbox.mark(q.id, State::Rejected, Some(&code)) {
                        tracing::error!(error = %e, "outbox");
                    }
                    set_link(t, Link::Online);
                    t.screen().notice = Some(Notice {
                        error: true,
                        text: format!("記録できませんでした: {}", crate::ui::crew_message(&code)),
                    });
                    refresh_incident(t, &session, q.incident).await;
                    t.redraw();
                    Progress::Worked
                }
            };
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "outbox");
            return Progress::Idle;
        }
    }
    let Some(req) = t.screen().request.clone() else {
        return Progress::Idle;
    };
    let body = SummaryBody {
        certificate: base64::engine::general_purpose::STANDARD.encode(&req.der),
        view: Some(match req.view {
            View::Summary => "summary".into(),
            View::Full => "full".into(),
        }),
    };
    match t.ems.summary(&session, req.incident, &body).await {
        Ok(response) => {
            {
                let mut s = t.screen();
                s.request = None;
                s.link = Link::Online;
                // The crew may have moved on (incident closed, signed out) meanwhile.
                if s.current == Some(req.incident) && s.crew.is_some() {
                    s.summary = Some(HeldSummary {
                        incident: req.incident,
                        response,
                    });
                    s.notice = None;
                    s.last_touch = Instant::now();
                }
            }
            t.redraw();
            refresh_incident(t, &session, req.incident).await;
            Progress::Worked
        }
        Err(CallError::Offline(detail)) => {
            if let Some(r) = t.screen().request.as_mut() {
                r.waiting_for_link = true;
            }
            set_link(t, Link::Offline { detail });
            t.redraw();
            Progress::Offline
        }
        Err(CallError::Refused { code, .. }) if is_transient(&code) => {
            if let Some(r) = t.screen().request.as_mut() {
                r.waiting_for_link = true;
            }
            t.screen().notice = Some(Notice {
                error: true,
                text: crate::ui::crew_message(&code).to_owned(),
            });
            t.redraw();
            Progress::Offline
        }
        Err(CallError::Refused { code, .. }) if is_auth_failure(&code) => {
            auth_lost(t, &code);
            Progress::Idle
        }
        Err(CallError::Refused { code, .. }) => {
            {
                let mut s = t.screen();
                s.request = None;
                s.link = Link::Online;
                s.notice = Some(Notice {
                    error: true,
                    text: crate::ui::crew_message(&code).to_owned(),
                });
            }
            t.redraw();
            refresh_incident(t, &session, req.incident).await;
            Progress::Worked
        }
    }
}

/// Re-reads one incident after a change, keeping the list current.
async fn refresh_incident(t: &Terminal, session: &str, id: i64) {
    match t.ems.incident(session, id).await {
        Ok(view) => {
            {
                let mut s = t.screen();
                if view.closed {
                    s.incidents.retain(|i| i.id != id);
                    if s.current == Some(id) {
                        s.current = None;
                        s.forget_patient();
                    }
                } else if let Some(slot) = s.incidents.iter_mut().find(|i| i.id == id) {
                    *slot = view;
                } else {
                    s.incidents.insert(0, view);
                }
            }
            t.redraw();
        }
        Err(CallError::Refused { code, .. }) if code == "wrong_team" => {
            // Reassigned to another team: it leaves this tablet.
            drop_incident(t, id);
        }
        Err(_) => {}
    }
}

fn drop_incident(t: &Terminal, id: i64) {
    {
        let mut s = t.screen();
        s.incidents.retain(|i| i.id != id);
        if s.current == Some(id) {
            s.current = None;
            s.forget_patient();
        }
    }
    t.redraw();
}

/// Replaces the list of open incidents of the team.
pub(crate) async fn refresh_all(t: &Terminal, session: &str) -> Result<(), CallError> {
    let list = t.ems.incidents(session).await?;
    {
        let mut s = t.screen();
        if let Some(cur) = s.current
            && !list.iter().any(|i| i.id == cur)
        {
            s.current = None;
            s.forget_patient();
        }
        if s.current.is_none() {
            s.current = list.first().map(|i| i.id);
        }
        s.incidents = list;
    }
    t.redraw();
    Ok(())
}

/// How long the push stream may stay silent (ems sends a keep-alive every 15 s).
const STREAM_SILENCE: Duration = Duration::from_secs(35);

async fn stream_loop(t: Arc<Terminal>) {
    loop {
        let Some(session) = t.screen().session() else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        match t.ems.stream(&session).await {
            Ok(mut body) => {
                set_link(&t, Link::Online);
                // Whatever was queued while the link was down goes now.
                t.wake.notify_one();
                if let Err(CallError::Refused { code, .. }) = refresh_all(&t, &session).await
                    && is_auth_failure(&code)
                {
                    auth_lost(&t, &code);
                    continue;
                }
                let mut parser = SseParser::default();
                loop {
                    let frame = match tokio::time::timeout(STREAM_SILENCE, body.frame()).await {
                        Ok(Some(Ok(f))) => f,
                        _ => break,
                    };
                    let Some(data) = frame.data_ref() else {
                        continue;
                    };
                    for (event, data) in parser.push(data) {
                        match event.as_str() {
                            "incident" => match data.parse::<i64>() {
                                Ok(id) => {
                                    let known = t.screen().incidents.iter().any(|i| i.id == id);
                                    if known {
                                        refresh_incident(&t, &session, id).await;
                                    } else {
                                        let _ = refresh_all(&t, &session).await;
                                    }
                                }
                                Err(_) => {
                                    let _ = refresh_all(&t, &session).await;
                                }
                            },
                            "signed_out" => auth_lost(&t, "crew_signed_out"),
                            _ => {
                                let _ = refresh_all(&t, &session).await;
                            }
                        }
                    }
                }
                if t.screen().session().is_some() {
                    set_link(
                        &t,
                        Link::Offline {
                            detail: "push stream ended".into(),
                        },
                    );
                }
            }
            Err(CallError::Offline(detail)) => set_link(&t, Link::Offline { detail }),
            Err(CallError::Refused { code, .. }) if is_auth_failure(&code) => {
                if t.screen().session().as_deref() == Some(session.as_str()) {
                    auth_lost(&t, &code);
                }
            }
            Err(CallError::Refused { .. }) => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn idle_loop(t: Arc<Terminal>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let expired = {
            let mut s = t.screen();
            if s.summary.is_some() && s.last_touch.elapsed() >= t.config.idle_timeout {
                s.forget_patient();
                s.notice = Some(Notice {
                    error: false,
                    text: "一定時間操作がなかったため、サマリーを画面から消去しました".into(),
                });
                true
            } else {
                false
            }
        };
        if expired {
            t.redraw();
        }
    }
}
