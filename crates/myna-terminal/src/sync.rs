//! The terminal's background work: deliver the outbox in order, send a waiting summary request
//! once its incident's events are through, follow `ems`'s push stream, and drop the summary
//! after the idle timeout.

use crate::card::certificate_b64;
use crate::ems_client::{CallError, SseParser};
use crate::outbox::Queued;
use crate::state::SummaryRequest;
use crate::{Link, Notice, Terminal};
use base64::Engine;
use http_body_util::BodyExt;
use myna_wire::terminal::{ConsentTap, CrewEvent, ErrorCode, PushEvent, SummaryBody};
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

pub(crate) fn auth_lost(t: &Terminal, code: ErrorCode) {
    t.screen().end_shift(Notice {
        error: true,
        text: crate::messages::crew_message(code).to_owned(),
    });
    t.redraw();
}

/// The card serial a queued face check is for (to learn the patient number ems gives it).
fn serial_of(q: &Queued) -> Option<String> {
    let CrewEvent::IdentityConfirmed { certificate } = &q.body.event else {
        return None;
    };
    let der = base64::engine::general_purpose::STANDARD
        .decode(certificate)
        .ok()?;
    myna_pki::certificate_serial_hex(&der).ok()
}

async fn deliver_once(t: &Terminal) -> Progress {
    let Some(session) = t.screen().session() else {
        return Progress::Idle;
    };
    let head = match t.outbox.head() {
        Ok(head) => head,
        Err(e) => {
            tracing::error!(error = %e, "outbox");
            return Progress::Idle;
        }
    };
    let request = t.screen().request.clone();
    match (head, request) {
        // Tap 2: the consent at the head of the queue goes with its summary request.
        (Some(q), Some(req))
            if req.incident == q.incident
                && req.consent_key.as_deref() == Some(q.body.idempotency_key.as_str()) =>
        {
            let CrewEvent::Consent { consent, .. } = q.body.event else {
                return post_event(t, &session, q).await;
            };
            let tap = ConsentTap {
                idempotency_key: q.body.idempotency_key.clone(),
                device_at_ms: q.body.device_at_ms,
                consent,
            };
            ask_summary(t, &session, req, Some(tap), Some(q.id)).await
        }
        (Some(q), _) => post_event(t, &session, q).await,
        (None, Some(req)) => ask_summary(t, &session, req, None, None).await,
        (None, None) => Progress::Idle,
    }
}

/// Sends one queued event; it leaves the outbox once ems answered it either way.
async fn post_event(t: &Terminal, session: &str, q: Queued) -> Progress {
    match t.ems.post_event(session, q.incident, &q.body).await {
        Ok(ack) => {
            if let (Some(patient), Some(serial)) = (ack.patient, serial_of(&q)) {
                t.screen().learn_patient(q.incident, &serial, patient);
            }
            delivered(t, q.id);
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
                refresh_incident(t, session, q.incident).await;
            } else {
                t.redraw();
            }
            Progress::Worked
        }
        Err(CallError::Offline(detail)) => {
            set_link(t, Link::Offline { detail });
            Progress::Offline
        }
        // ems answered "later": the tap stays queued, as if the link were down.
        Err(CallError::Refused { code, .. }) if code.is_transient() => {
            t.screen().notice = Some(Notice {
                error: true,
                text: crate::messages::crew_message(code).to_owned(),
            });
            t.redraw();
            Progress::Offline
        }
        Err(CallError::Refused { code, .. }) if code.is_auth_failure() => {
            auth_lost(t, code);
            Progress::Idle
        }
        Err(CallError::Refused { code, message, .. }) => {
            tracing::warn!(%code, %message, "ems refused a queued event");
            delivered(t, q.id);
            set_link(t, Link::Online);
            t.screen().notice = Some(Notice {
                error: true,
                text: format!(
                    "記録できませんでした: {}",
                    crate::messages::crew_message(code)
                ),
            });
            refresh_incident(t, session, q.incident).await;
            t.redraw();
            Progress::Worked
        }
    }
}

fn delivered(t: &Terminal, id: i64) {
    if let Err(e) = t.outbox.delivered(id) {
        tracing::error!(error = %e, "outbox");
    }
}

/// Asks for a summary, with the consent tap `tap` (outbox row `row`) if tap 2 goes with it.
async fn ask_summary(
    t: &Terminal,
    session: &str,
    req: SummaryRequest,
    tap: Option<ConsentTap>,
    row: Option<i64>,
) -> Progress {
    let body = SummaryBody {
        certificate: certificate_b64(&req.der),
        view: req.view,
        consent: tap,
    };
    match t.ems.summary(session, req.incident, &body).await {
        Ok(answer) => {
            if let Some(id) = row {
                delivered(t, id);
            }
            t.screen()
                .summary_arrived(&req, answer.patient, answer.summary, Instant::now());
            set_link(t, Link::Online);
            t.redraw();
            refresh_incident(t, session, req.incident).await;
            Progress::Worked
        }
        Err(CallError::Offline(detail)) => {
            t.screen().request_waiting();
            set_link(t, Link::Offline { detail });
            t.redraw();
            Progress::Offline
        }
        Err(CallError::Refused { code, .. }) if code.is_transient() => {
            // The consent may be committed already; its key makes the resend an answer. It
            // goes on its own from now on, so the provider's outage holds up no other tap.
            {
                let mut s = t.screen();
                s.request_failed_for_now(&req);
                s.notice = Some(Notice {
                    error: true,
                    text: crate::messages::crew_message(code).to_owned(),
                });
            }
            t.redraw();
            Progress::Offline
        }
        Err(CallError::Refused { code, .. }) if code.is_auth_failure() => {
            auth_lost(t, code);
            Progress::Idle
        }
        Err(CallError::Refused { code, .. }) => {
            if let Some(id) = row {
                delivered(t, id);
            }
            t.screen()
                .request_refused(&req, crate::messages::crew_message(code).to_owned());
            set_link(t, Link::Online);
            t.redraw();
            refresh_incident(t, session, req.incident).await;
            Progress::Worked
        }
    }
}

/// Re-reads one incident after a change, keeping the list current.
async fn refresh_incident(t: &Terminal, session: &str, id: i64) {
    refresh_statuses(t, session).await;
    match t.ems.incident(session, id).await {
        Ok(view) => {
            t.screen().incident_updated(view);
            t.redraw();
        }
        Err(CallError::Refused {
            code: ErrorCode::WrongTeam,
            ..
        }) => {
            // Reassigned to another team: it leaves this tablet.
            t.screen().incident_gone(id);
            t.redraw();
        }
        Err(_) => {}
    }
}

/// Takes the hospitals' latest acceptance statuses; on failure the last ones stay, and the
/// ranking marks them by their age.
async fn refresh_statuses(t: &Terminal, session: &str) {
    if let Ok(s) = t.ems.hospital_statuses(session).await {
        let mut screen = t.screen();
        screen.hospital_statuses = s.statuses;
        screen.stale_after_minutes = Some(s.stale_after_minutes);
    }
}

/// Replaces the list of open incidents of the team.
pub(crate) async fn refresh_all(t: &Terminal, session: &str) -> Result<(), CallError> {
    refresh_statuses(t, session).await;
    let list = t.ems.incidents(session).await?;
    t.screen().incidents_listed(list);
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
                    && code.is_auth_failure()
                {
                    auth_lost(&t, code);
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
                        match PushEvent::parse(&event) {
                            Some(PushEvent::Incident) => match data.parse::<i64>() {
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
                            Some(PushEvent::SignedOut) => auth_lost(&t, ErrorCode::CrewSignedOut),
                            Some(PushEvent::Resync) | None => {
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
            Err(CallError::Refused { code, .. }) if code.is_auth_failure() => {
                if t.screen().session().as_deref() == Some(session.as_str()) {
                    auth_lost(&t, code);
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
        let expired = t.screen().idle_check(Instant::now(), t.config.idle_timeout);
        if expired {
            t.redraw();
        }
    }
}
