#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The terminal API and the desk on a real SQLite file, driven in process: credentials,
//! revocation, tenancy, the viewing rule's order of checks and bad input. The successful
//! summary path (with the provider) is covered by the browser tests.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use http_body_util::BodyExt;
use myna_domain::incident::{Actor, ComplaintCategory, EventKind};
use myna_ems::{Ems, router};
use myna_store::ems::{BureauSeed, EmsStore, NewEvent};
use myna_store::hash_secret;
use myna_store_sqlite::EmsSqlite;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";

fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| myna_ems::auth::hash_password(PASSWORD).unwrap())
        .clone()
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<EmsSqlite>,
    app: axum::Router,
    /// Bureau A (Kawasaki) and a second bureau B.
    a: i64,
    b: i64,
}

fn small_bureau(code: &str) -> BureauSeed {
    let mut seed = myna_ems::seed::kawasaki("http://127.0.0.1:9", "unused", |_, _| password_hash());
    seed.code = code.into();
    seed
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmsSqlite::open(&dir.path().join("ems.db")).unwrap());
    let a = store
        .seed_bureau(small_bureau("kawasaki-fd"))
        .await
        .unwrap();
    let b = store.seed_bureau(small_bureau("other-fd")).await.unwrap();
    let ems = Arc::new(Ems::new(store.clone(), Arc::new(chrono::Utc::now)));
    World {
        _dir: dir,
        app: router(ems),
        store,
        a,
        b,
    }
}

impl World {
    async fn team(&self, bureau: i64, name: &str) -> i64 {
        self.store
            .teams(bureau)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.name == name)
            .unwrap()
            .id
    }

    async fn terminal(&self, bureau: i64, team: &str) -> (i64, String) {
        let team = self.team(bureau, team).await;
        let token = myna_web::random_token();
        let id = self
            .store
            .add_terminal(bureau, team, "tablet", hash_secret(&token))
            .await
            .unwrap();
        (id, token)
    }

    async fn incident_for(&self, bureau: i64, team: &str) -> i64 {
        let team = self.team(bureau, team).await;
        let now = chrono::Utc::now().timestamp_millis();
        let created = NewEvent {
            kind: EventKind::Created {
                location: "川崎市中原区".into(),
                category: ComplaintCategory::ChestPain,
                note: String::new(),
                card_prep_requested: true,
            },
            actor: Actor::Dispatcher { account: 1 },
            idempotency_key: myna_web::random_token(),
            device_at_ms: None,
            team_guard: None,
        };
        let id = self
            .store
            .create_incident(bureau, created, now)
            .await
            .unwrap()
            .id;
        let assign = NewEvent {
            kind: EventKind::Assigned { team },
            actor: Actor::Dispatcher { account: 1 },
            idempotency_key: myna_web::random_token(),
            device_at_ms: None,
            team_guard: None,
        };
        self.store.append(bureau, id, assign, now).await.unwrap();
        id
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        session: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(s) = session {
            req = req.header("x-crew-session", s);
        }
        let req = req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.unwrap_or_default()))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn sign_in(&self, token: &str, login: &str) -> String {
        let body = json!({"login": login, "password": PASSWORD})
            .to_string()
            .into_bytes();
        let (status, v) = self
            .call(
                "POST",
                "/api/v1/terminal/sign-in",
                Some(token),
                None,
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["session"].as_str().unwrap().to_owned()
    }

    async fn events(&self, bureau: i64, id: i64) -> usize {
        self.store
            .incident(bureau, id)
            .await
            .unwrap()
            .unwrap()
            .log
            .events
            .len()
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn phase_body(key: &str, phase: &str) -> Vec<u8> {
    json!({"idempotency_key": key, "device_at_ms": chrono::Utc::now().timestamp_millis(),
           "event": {"kind": "phase", "phase": phase}})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn unknown_credentials_and_wrong_passwords_are_refused() {
    let w = world().await;
    let (_, token) = w.terminal(w.a, "中原救急1").await;
    let (s, v) = w
        .call("GET", "/api/v1/terminal/whoami", None, None, None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "terminal_unknown")
    );
    let (s, v) = w
        .call("GET", "/api/v1/terminal/whoami", Some("forged"), None, None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "terminal_unknown")
    );
    let wrong = json!({"login": "crew10", "password": "nope"})
        .to_string()
        .into_bytes();
    let (s, v) = w
        .call(
            "POST",
            "/api/v1/terminal/sign-in",
            Some(&token),
            None,
            Some(wrong),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "bad_credentials"));
    // A dispatcher's password does not open a crew session.
    let desk = json!({"login": "dispatcher", "password": PASSWORD})
        .to_string()
        .into_bytes();
    let (s, v) = w
        .call(
            "POST",
            "/api/v1/terminal/sign-in",
            Some(&token),
            None,
            Some(desk),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "bad_credentials"));
    // Without a crew session, no incident data.
    let (s, v) = w
        .call(
            "GET",
            "/api/v1/terminal/incidents",
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "crew_signed_out"));
}

#[tokio::test]
async fn a_revoked_terminal_is_refused_on_its_next_request() {
    let w = world().await;
    let (id, token) = w.terminal(w.a, "中原救急1").await;
    let session = w.sign_in(&token, "crew10").await;
    let (s, _) = w
        .call(
            "GET",
            "/api/v1/terminal/incidents",
            Some(&token),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        !w.store.revoke_terminal(w.b, id).await.unwrap(),
        "another bureau cannot revoke it"
    );
    assert!(w.store.revoke_terminal(w.a, id).await.unwrap());
    let (s, v) = w
        .call(
            "GET",
            "/api/v1/terminal/incidents",
            Some(&token),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "terminal_revoked")
    );
}

#[tokio::test]
async fn a_crew_session_works_only_on_the_terminal_it_was_opened_on() {
    let w = world().await;
    let (_, t1) = w.terminal(w.a, "中原救急1").await;
    let (_, t2) = w.terminal(w.a, "中原救急1").await;
    let session = w.sign_in(&t1, "crew10").await;
    let (s, v) = w
        .call(
            "GET",
            "/api/v1/terminal/incidents",
            Some(&t2),
            Some(&session),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "crew_signed_out"));
}

#[tokio::test]
async fn another_bureau_or_team_can_neither_read_nor_write_an_incident() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let before = w.events(w.a, incident).await;

    // Same bureau, other team.
    let (_, t) = w.terminal(w.a, "幸救急1").await;
    let s_other = w.sign_in(&t, "crew06").await;
    let path = format!("/api/v1/terminal/incidents/{incident}");
    let (s, v) = w.call("GET", &path, Some(&t), Some(&s_other), None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "wrong_team"));
    let (s, v) = w
        .call(
            "POST",
            &format!("{path}/events"),
            Some(&t),
            Some(&s_other),
            Some(phase_body("k1", "arrival")),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "wrong_team"));

    // Another bureau's team with the same name: the incident does not exist for it.
    let (_, tb) = w.terminal(w.b, "中原救急1").await;
    let s_b = w.sign_in(&tb, "crew10").await;
    let (s, v) = w.call("GET", &path, Some(&tb), Some(&s_b), None).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "incident_not_found"));
    let (s, v) = w
        .call(
            "POST",
            &format!("{path}/events"),
            Some(&tb),
            Some(&s_b),
            Some(phase_body("k2", "arrival")),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "incident_not_found"));
    let (_, list) = w
        .call(
            "GET",
            "/api/v1/terminal/incidents",
            Some(&tb),
            Some(&s_b),
            None,
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 0);

    assert_eq!(
        w.events(w.a, incident).await,
        before,
        "nothing was appended"
    );
}

#[tokio::test]
async fn crew_events_are_idempotent_and_dispatcher_kinds_are_refused() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, t) = w.terminal(w.a, "中原救急1").await;
    let session = w.sign_in(&t, "crew10").await;
    let path = format!("/api/v1/terminal/incidents/{incident}/events");
    let (s, first) = w
        .call(
            "POST",
            &path,
            Some(&t),
            Some(&session),
            Some(phase_body("tap-1", "arrival")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert_eq!(first["duplicate"], false);
    let (s, again) = w
        .call(
            "POST",
            &path,
            Some(&t),
            Some(&session),
            Some(phase_body("tap-1", "arrival")),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["seq"], first["seq"]);
    // The same key for a different event is a client bug, refused.
    let (s, v) = w
        .call(
            "POST",
            &path,
            Some(&t),
            Some(&session),
            Some(phase_body("tap-1", "contact")),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "idempotency_key_reused")
    );
    let n = w.events(w.a, incident).await;

    let assign = json!({"idempotency_key": "x", "device_at_ms": null, "event": {"kind": "assigned", "team": 1}});
    let (s, v) = w
        .call(
            "POST",
            &path,
            Some(&t),
            Some(&session),
            Some(assign.to_string().into_bytes()),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, v) = w
        .call(
            "POST",
            &path,
            Some(&t),
            Some(&session),
            Some(b"{not json".to_vec()),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );
    let (s, v) = w
        .call(
            "POST",
            &path,
            Some(&t),
            Some(&session),
            Some(phase_body("tap-2", "dispatch")),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "not_a_crew_phase"));
    assert_eq!(
        w.events(w.a, incident).await,
        n,
        "refused requests append nothing"
    );
}

#[tokio::test]
async fn the_summary_waits_for_the_face_check_and_consent_and_a_dead_provider_is_plain() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, t) = w.terminal(w.a, "中原救急1").await;
    let session = w.sign_in(&t, "crew10").await;
    let card = myna_card_emu::testing::test_card("01AA00000001").unwrap();
    let certificate = base64::engine::general_purpose::STANDARD.encode(&card.auth_cert);
    let body = json!({"certificate": certificate}).to_string().into_bytes();
    let path = format!("/api/v1/terminal/incidents/{incident}/summary");
    let (s, v) = w
        .call("POST", &path, Some(&t), Some(&session), Some(body.clone()))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "identity_not_confirmed")
    );

    let events = format!("/api/v1/terminal/incidents/{incident}/events");
    let face = json!({"idempotency_key": "f", "device_at_ms": null, "event": {"kind": "identity_confirmed"}});
    let (s, _) = w
        .call(
            "POST",
            &events,
            Some(&t),
            Some(&session),
            Some(face.to_string().into_bytes()),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = w
        .call("POST", &path, Some(&t), Some(&session), Some(body.clone()))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "no_consent"));

    let consent = json!({"idempotency_key": "c", "device_at_ms": null,
                         "event": {"kind": "consent", "consent": {"kind": "obtained"}}});
    let (s, v) = w
        .call(
            "POST",
            &events,
            Some(&t),
            Some(&session),
            Some(consent.to_string().into_bytes()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The bureau's provider is a closed port: plainly unavailable, and no view is recorded.
    let (s, v) = w
        .call("POST", &path, Some(&t), Some(&session), Some(body))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable")
    );
    assert!(
        w.store
            .view_records("kawasaki-fd", 10)
            .await
            .unwrap()
            .is_empty()
    );

    let bad = json!({"certificate": "not base64!"})
        .to_string()
        .into_bytes();
    let (s, v) = w
        .call("POST", &path, Some(&t), Some(&session), Some(bad))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );
}

#[tokio::test]
async fn the_desk_needs_a_dispatcher_and_stays_inside_its_bureau() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let get = |uri: String, cookie: Option<String>| {
        let mut r = Request::builder().uri(uri);
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, c);
        }
        r.body(Body::empty()).unwrap()
    };
    let resp = w
        .app
        .clone()
        .oneshot(get("/dispatch".into(), None))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/login");

    let login = |bureau: &str, login: &str| {
        Request::builder()
            .method("POST")
            .uri("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "bureau={bureau}&login={login}&password=correct+horse+battery"
            )))
            .unwrap()
    };
    // A crew account cannot sign in at the desk.
    let resp = w
        .app
        .clone()
        .oneshot(login("kawasaki-fd", "crew10"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Bureau B's dispatcher does not find bureau A's incident.
    let resp = w
        .app
        .clone()
        .oneshot(login("other-fd", "dispatcher"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = resp.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let resp = w
        .app
        .clone()
        .oneshot(get(
            format!("/dispatch/incidents/{incident}"),
            Some(cookie.clone()),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // And cannot close it.
    let close = Request::builder()
        .method("POST")
        .uri(format!("/dispatch/incidents/{incident}/close"))
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    let resp = w.app.clone().oneshot(close).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let log = w.store.incident(w.a, incident).await.unwrap().unwrap().log;
    assert!(!log.is_closed());
}
