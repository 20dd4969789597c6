#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `ems` router driven in process (`tower::ServiceExt::oneshot`) on a real `EmsSqlite` file:
//! crew sign-in, terminal credentials and revocation, team and bureau boundaries, the viewing
//! rule's order of checks, malformed input, idempotent events, the desk's sign-in and tenancy,
//! and a dead provider. No provider runs here: the successful summary is the browser tests'.

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use base64::Engine;
use http_body_util::BodyExt;
use myna_domain::incident::{Actor, ComplaintCategory, EventKind};
use myna_ems::{Ems, router};
use myna_store::ChainReport;
use myna_store::ems::{BureauId, EmsStore, IncidentFilter, NewEvent};
use myna_store::hash_secret;
use myna_store_sqlite::EmsSqlite;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";
const A_CODE: &str = "kawasaki-fd";
const B_CODE: &str = "sagamihara-fd";
/// Nobody listens on the discard port: connecting is refused at once.
const DEAD_PROVIDER: &str = "http://127.0.0.1:9";

/// One argon2 hash for every account: hashing is slow, and the tests need one password only.
fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| myna_ems::auth::hash_password(PASSWORD).unwrap())
        .clone()
}

/// A real JPKI-shaped authentication certificate, base64 (generating RSA keys is slow: once).
fn certificate_b64() -> String {
    static CERT: OnceLock<String> = OnceLock::new();
    CERT.get_or_init(|| {
        let card = myna_card_emu::testing::test_card("01AA00000042").unwrap();
        base64::engine::general_purpose::STANDARD.encode(&card.auth_cert)
    })
    .clone()
}

fn summary_body() -> Vec<u8> {
    json!({ "certificate": certificate_b64() })
        .to_string()
        .into_bytes()
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<EmsSqlite>,
    app: axum::Router,
    /// Kawasaki, and a second bureau seeded from the same template (same team names, same
    /// logins), so only the bureau tells them apart.
    a: BureauId,
    b: BureauId,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmsSqlite::open(&dir.path().join("ems.db")).unwrap());
    let seed = |code: &str| {
        let mut s = myna_ems::seed::kawasaki("http://provider.invalid", "org-token", |_, _| {
            password_hash()
        });
        s.code = code.into();
        s
    };
    let a = store.seed_bureau(seed(A_CODE)).await.unwrap();
    let b = store.seed_bureau(seed(B_CODE)).await.unwrap();
    let ems = Arc::new(Ems::new(store.clone(), Arc::new(chrono::Utc::now)));
    World {
        _dir: dir,
        store,
        app: router(ems),
        a,
        b,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

async fn json_of(resp: Response<Body>) -> (StatusCode, Value) {
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn event_body(key: &str, event: Value) -> Vec<u8> {
    json!({ "idempotency_key": key, "device_at_ms": now_ms(), "event": event })
        .to_string()
        .into_bytes()
}

/// The `ems_session=…` pair from a desk login's `Set-Cookie`.
fn session_cookie(resp: &Response<Body>) -> Option<String> {
    let set = resp.headers().get(header::SET_COOKIE)?.to_str().ok()?;
    let pair = set.split(';').next()?.trim();
    pair.starts_with("ems_session=").then(|| pair.to_owned())
}

impl World {
    async fn team(&self, bureau: BureauId, name: &str) -> i64 {
        self.store
            .teams(bureau)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.name == name)
            .unwrap()
            .id
    }

    /// Registers a tablet for the team; returns its id and its bearer credential.
    async fn terminal(&self, bureau: BureauId, team: &str) -> (i64, String) {
        let team = self.team(bureau, team).await;
        let token = myna_web::random_token();
        let id = self
            .store
            .add_terminal(bureau, team, "tablet", hash_secret(&token))
            .await
            .unwrap();
        (id, token)
    }

    /// An incident created and assigned through the store.
    async fn incident_for(&self, bureau: BureauId, team: &str) -> i64 {
        let team = self.team(bureau, team).await;
        let dispatcher = |kind: EventKind| NewEvent {
            kind,
            actor: Actor::Dispatcher { account: 1 },
            idempotency_key: myna_web::random_token(),
            device_at_ms: None,
            team_guard: None,
        };
        let created = dispatcher(EventKind::Created {
            location: "川崎市中原区小杉町3丁目".into(),
            category: ComplaintCategory::ChestPain,
            note: String::new(),
            card_prep_requested: true,
        });
        let id = self
            .store
            .create_incident(bureau, created, now_ms())
            .await
            .unwrap()
            .id;
        self.store
            .append(
                bureau,
                id,
                dispatcher(EventKind::Assigned { team }),
                now_ms(),
            )
            .await
            .unwrap();
        id
    }

    async fn send(&self, req: Request<Body>) -> Response<Body> {
        self.app.clone().oneshot(req).await.unwrap()
    }

    /// A terminal API call: bearer credential, crew session header, JSON body.
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
        json_of(self.send(req).await).await
    }

    async fn sign_in_as(&self, token: &str, login: &str, password: &str) -> (StatusCode, Value) {
        let body = json!({ "login": login, "password": password })
            .to_string()
            .into_bytes();
        self.call(
            "POST",
            "/api/v1/terminal/sign-in",
            Some(token),
            None,
            Some(body),
        )
        .await
    }

    async fn sign_in(&self, token: &str, login: &str) -> String {
        let (s, v) = self.sign_in_as(token, login, PASSWORD).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["session"].as_str().unwrap().to_owned()
    }

    /// A terminal of `team` with `login` signed in on it.
    async fn crew(&self, bureau: BureauId, team: &str, login: &str) -> (i64, String, String) {
        let (id, token) = self.terminal(bureau, team).await;
        let session = self.sign_in(&token, login).await;
        (id, token, session)
    }

    async fn post_event(
        &self,
        token: &str,
        session: &str,
        incident: i64,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        self.call(
            "POST",
            &format!("/api/v1/terminal/incidents/{incident}/events"),
            Some(token),
            Some(session),
            Some(body),
        )
        .await
    }

    async fn events(&self, bureau: BureauId, id: i64) -> Vec<EventKind> {
        self.store
            .incident(bureau, id)
            .await
            .unwrap()
            .unwrap()
            .log
            .events
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    fn form(&self, path: &str, cookie: Option<&str>, body: String) -> Request<Body> {
        let mut req = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        req.body(Body::from(body)).unwrap()
    }

    fn get(&self, path: &str, cookie: Option<&str>) -> Request<Body> {
        let mut req = Request::builder().uri(path);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        req.body(Body::empty()).unwrap()
    }

    async fn desk_login(&self, bureau: &str, login: &str) -> Response<Body> {
        let body = format!("bureau={bureau}&login={login}&password=correct+horse+battery+staple");
        self.send(self.form("/login", None, body)).await
    }

    /// The desk session cookie of a dispatcher or admin.
    async fn desk(&self, bureau: &str, login: &str) -> String {
        let resp = self.desk_login(bureau, login).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        session_cookie(&resp).unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Seeding

#[tokio::test]
async fn the_kawasaki_seed_gives_31_teams_and_cannot_be_seeded_twice() {
    let w = world().await;
    assert_eq!(w.store.teams(w.a).await.unwrap().len(), 31);
    let again = myna_ems::seed::kawasaki(DEAD_PROVIDER, "t", |_, _| password_hash());
    assert!(w.store.seed_bureau(again).await.is_err());
    assert_eq!(w.store.teams(w.a).await.unwrap().len(), 31);
    assert_eq!(
        w.store.bureau(A_CODE).await.unwrap().unwrap().id,
        w.a,
        "the refused seed did not replace the bureau"
    );
}

// ---------------------------------------------------------------------------------------------
// Crew sign-in and terminal credentials

#[tokio::test]
async fn crew_sign_in_with_a_wrong_password_is_bad_credentials_and_the_right_one_opens_a_session() {
    let w = world().await;
    let (terminal, token) = w.terminal(w.a, "中原救急1").await;

    for (login, password) in [
        ("crew10", "correct horse battery"),
        ("crew10", ""),
        ("nobody", PASSWORD),
    ] {
        let (s, v) = w.sign_in_as(&token, login, password).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNAUTHORIZED, "bad_credentials"),
            "{login}/{password:?}"
        );
        assert!(v.get("session").is_none());
    }

    let (s, v) = w.sign_in_as(&token, "crew10", PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["crew_login"], "crew10");
    assert_eq!(v["terminal"]["bureau"], A_CODE);
    assert_eq!(v["terminal"]["team_name"], "中原救急1");
    let session = v["session"].as_str().unwrap();
    let stored = w
        .store
        .session(&hash_secret(session), now_ms())
        .await
        .unwrap()
        .expect("the session is stored under its hash");
    assert_eq!(stored.account.login, "crew10");
    assert_eq!(stored.terminal_id, Some(terminal));
    // And it opens the crew's endpoints.
    let (s, v) = w
        .call(
            "GET",
            "/api/v1/terminal/incidents",
            Some(&token),
            Some(session),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v.is_array());
}

#[tokio::test]
async fn a_missing_or_unknown_bearer_is_terminal_unknown() {
    let w = world().await;
    let (_, token) = w.terminal(w.a, "中原救急1").await;
    let whoami = "/api/v1/terminal/whoami";

    let (s, v) = w.call("GET", whoami, None, None, None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "terminal_unknown")
    );
    let (s, v) = w
        .call("GET", whoami, Some(&myna_web::random_token()), None, None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "terminal_unknown")
    );
    // The stored hash is not a credential.
    let (s, v) = w
        .call("GET", whoami, Some(&hash_secret(&token)), None, None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "terminal_unknown")
    );
    // Not a bearer scheme.
    let req = Request::builder()
        .uri(whoami)
        .header(header::AUTHORIZATION, format!("Basic {token}"))
        .body(Body::empty())
        .unwrap();
    let (s, v) = json_of(w.send(req).await).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "terminal_unknown")
    );
    // Sign-in needs the terminal first.
    let body = json!({"login": "crew10", "password": PASSWORD})
        .to_string()
        .into_bytes();
    let (s, v) = w
        .call("POST", "/api/v1/terminal/sign-in", None, None, Some(body))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "terminal_unknown")
    );

    // The real credential works.
    let (s, v) = w.call("GET", whoami, Some(&token), None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["team_name"], "中原救急1");
}

#[tokio::test]
async fn after_revoke_terminal_the_very_next_request_is_terminal_revoked() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (id, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    let path = format!("/api/v1/terminal/incidents/{incident}");
    let (s, _) = w
        .call("GET", &path, Some(&token), Some(&session), None)
        .await;
    assert_eq!(s, StatusCode::OK);

    assert!(w.store.revoke_terminal(w.a, id).await.unwrap());

    let (s, v) = w
        .call("GET", &path, Some(&token), Some(&session), None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "terminal_revoked")
    );
    let before = w.events(w.a, incident).await.len();
    let (s, v) = w
        .post_event(
            &token,
            &session,
            incident,
            event_body("after-revoke", json!({"kind": "phase", "phase": "arrival"})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "terminal_revoked")
    );
    assert_eq!(w.events(w.a, incident).await.len(), before);
    let (s, v) = w.sign_in_as(&token, "crew10", PASSWORD).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "terminal_revoked")
    );
}

// ---------------------------------------------------------------------------------------------
// Teams and bureaus

#[tokio::test]
async fn a_terminal_of_another_team_can_neither_read_nor_write_nor_view_an_incident() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    // The assigned team records the face check and consent, so only the team rule stands
    // between the other team and the summary.
    let (_, own_token, own_session) = w.crew(w.a, "中原救急1", "crew10").await;
    for (key, event) in [
        ("face", json!({"kind": "identity_confirmed"})),
        (
            "consent",
            json!({"kind": "consent", "consent": {"kind": "obtained"}}),
        ),
    ] {
        let (s, v) = w
            .post_event(&own_token, &own_session, incident, event_body(key, event))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let before = w.events(w.a, incident).await;

    let (_, token, session) = w.crew(w.a, "幸救急1", "crew06").await;
    let base = format!("/api/v1/terminal/incidents/{incident}");
    let (s, v) = w
        .call("GET", &base, Some(&token), Some(&session), None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "wrong_team"));
    assert!(v.get("location").is_none(), "no incident data leaks: {v}");

    let (s, v) = w
        .post_event(
            &token,
            &session,
            incident,
            event_body("k1", json!({"kind": "phase", "phase": "arrival"})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "wrong_team"));

    let (s, v) = w
        .call(
            "POST",
            &format!("{base}/summary"),
            Some(&token),
            Some(&session),
            Some(summary_body()),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "wrong_team"));

    // Not in the other team's list either.
    let (s, list) = w
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
        list.as_array()
            .unwrap()
            .iter()
            .all(|i| i["id"] != json!(incident))
    );

    assert_eq!(w.events(w.a, incident).await, before, "nothing appended");
    assert!(w.store.view_records(A_CODE, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_terminal_of_another_bureau_does_not_find_the_incident() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let before = w.events(w.a, incident).await;
    // Same team name, same login, other bureau.
    let (_, token, session) = w.crew(w.b, "中原救急1", "crew10").await;
    let base = format!("/api/v1/terminal/incidents/{incident}");
    let (s, v) = w
        .call("GET", &base, Some(&token), Some(&session), None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "incident_not_found"));
    let (s, v) = w
        .post_event(
            &token,
            &session,
            incident,
            event_body("k", json!({"kind": "phase", "phase": "arrival"})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "incident_not_found"));
    let (s, v) = w
        .call(
            "POST",
            &format!("{base}/summary"),
            Some(&token),
            Some(&session),
            Some(summary_body()),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "incident_not_found"));
    assert_eq!(w.events(w.a, incident).await, before);
}

#[tokio::test]
async fn a_crew_session_is_refused_on_another_terminal() {
    let w = world().await;
    let (_, t1, session) = w.crew(w.a, "中原救急1", "crew10").await;
    let (_, t2) = w.terminal(w.a, "中原救急1").await;
    let (_, tb) = w.terminal(w.b, "中原救急1").await;
    for token in [&t2, &tb] {
        let (s, v) = w
            .call(
                "GET",
                "/api/v1/terminal/incidents",
                Some(token),
                Some(&session),
                None,
            )
            .await;
        assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "crew_signed_out"));
    }
    let (s, _) = w
        .call(
            "GET",
            "/api/v1/terminal/incidents",
            Some(&t1),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// The viewing rule

#[tokio::test]
async fn the_summary_before_the_face_check_then_before_consent_is_refused() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    let path = format!("/api/v1/terminal/incidents/{incident}/summary");

    let (s, v) = w
        .call(
            "POST",
            &path,
            Some(&token),
            Some(&session),
            Some(summary_body()),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "identity_not_confirmed")
    );

    // Consent alone is not enough: the face check comes first.
    let (s, _) = w
        .post_event(
            &token,
            &session,
            incident,
            event_body(
                "consent",
                json!({"kind": "consent", "consent": {"kind": "obtained"}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = w
        .call(
            "POST",
            &path,
            Some(&token),
            Some(&session),
            Some(summary_body()),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "identity_not_confirmed")
    );

    // A second incident: face check, no consent.
    let second = w.incident_for(w.a, "中原救急1").await;
    let (s, _) = w
        .post_event(
            &token,
            &session,
            second,
            event_body("face", json!({"kind": "identity_confirmed"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = w
        .call(
            "POST",
            &format!("/api/v1/terminal/incidents/{second}/summary"),
            Some(&token),
            Some(&session),
            Some(summary_body()),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "no_consent"));

    assert!(w.store.view_records(A_CODE, 10).await.unwrap().is_empty());
    for id in [incident, second] {
        assert!(
            !w.events(w.a, id)
                .await
                .iter()
                .any(|k| matches!(k, EventKind::SummaryViewed { .. })),
            "a refused summary records no view"
        );
    }
}

#[tokio::test]
async fn a_dead_provider_is_503_provider_unavailable_and_no_view_is_logged() {
    let w = world().await;
    w.store.set_provider(w.a, DEAD_PROVIDER, "t").await.unwrap();
    assert_eq!(
        w.store
            .bureau_by_id(w.a)
            .await
            .unwrap()
            .unwrap()
            .provider_url,
        DEAD_PROVIDER
    );
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    for (key, event) in [
        ("face", json!({"kind": "identity_confirmed"})),
        (
            "consent",
            json!({"kind": "consent", "consent": {"kind": "obtained"}}),
        ),
    ] {
        let (s, v) = w
            .post_event(&token, &session, incident, event_body(key, event))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let before = w.events(w.a, incident).await;

    let (s, v) = w
        .call(
            "POST",
            &format!("/api/v1/terminal/incidents/{incident}/summary"),
            Some(&token),
            Some(&session),
            Some(summary_body()),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable")
    );

    assert!(w.store.view_records(A_CODE, 10).await.unwrap().is_empty());
    assert!(matches!(
        w.store.verify_view_log().await.unwrap(),
        ChainReport::Intact { entries: 0, .. }
    ));
    assert_eq!(
        w.events(w.a, incident).await,
        before,
        "no view and no outcome recorded"
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input and events

#[tokio::test]
async fn a_malformed_json_body_is_400_malformed_request_and_appends_nothing() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    let before = w.events(w.a, incident).await;

    let bodies: [&[u8]; 7] = [
        b"{not json",
        b"",
        br#"{"idempotency_key": "k", "device_at_ms": null}"#,
        br#"{"idempotency_key": "k", "device_at_ms": null, "event": {"kind": "teleported"}}"#,
        br#"{"idempotency_key": "k", "device_at_ms": null, "event": {"kind": "phase", "phase": "lunch"}}"#,
        br#"{"idempotency_key": "k", "device_at_ms": null, "event": {"kind": "identity_confirmed"}, "extra": 1}"#,
        br#"{"idempotency_key": "", "device_at_ms": null, "event": {"kind": "identity_confirmed"}}"#,
    ];
    for body in bodies {
        let (s, v) = w
            .post_event(&token, &session, incident, body.to_vec())
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "malformed_request"),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let long_key = "k".repeat(129);
    let (s, v) = w
        .post_event(
            &token,
            &session,
            incident,
            event_body(&long_key, json!({"kind": "identity_confirmed"})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );
    assert_eq!(w.events(w.a, incident).await, before);

    // The summary and sign-in endpoints answer bad bodies the same way.
    let (s, v) = w
        .call(
            "POST",
            &format!("/api/v1/terminal/incidents/{incident}/summary"),
            Some(&token),
            Some(&session),
            Some(br#"{"certificate": "not base64!"}"#.to_vec()),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );
    let (s, v) = w
        .call(
            "POST",
            "/api/v1/terminal/sign-in",
            Some(&token),
            None,
            Some(b"login=crew10".to_vec()),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );
}

#[tokio::test]
async fn resending_an_idempotency_key_is_a_duplicate_and_stored_once() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    let arrival = || event_body("tap-1", json!({"kind": "phase", "phase": "arrival"}));

    let (s, first) = w.post_event(&token, &session, incident, arrival()).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["seq"], 3);
    for _ in 0..2 {
        let (s, again) = w.post_event(&token, &session, incident, arrival()).await;
        assert_eq!(s, StatusCode::OK, "{again}");
        assert_eq!(again["duplicate"], true);
        assert_eq!(again["seq"], first["seq"]);
        assert_eq!(again["at_ms"], first["at_ms"]);
    }
    let log = w.store.incident(w.a, incident).await.unwrap().unwrap().log;
    assert_eq!(log.events.len(), 3);
    assert_eq!(
        log.events
            .iter()
            .filter(|e| e.idempotency_key == "tap-1")
            .count(),
        1
    );

    // The same key for another event is refused, not stored.
    let (s, v) = w
        .post_event(
            &token,
            &session,
            incident,
            event_body("tap-1", json!({"kind": "phase", "phase": "contact"})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "idempotency_key_reused")
    );
    assert_eq!(w.events(w.a, incident).await.len(), 3);
}

#[tokio::test]
async fn a_dispatcher_only_kind_from_a_terminal_is_forbidden() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    let own_team = w.team(w.a, "中原救急1").await;
    let before = w.events(w.a, incident).await;
    for (key, event) in [
        ("a1", json!({"kind": "assigned", "team": 1})),
        ("a2", json!({"kind": "assigned", "team": own_team})),
        (
            "c1",
            json!({"kind": "created", "location": "x", "category": "trauma",
                   "note": "", "card_prep_requested": false}),
        ),
        ("v1", json!({"kind": "summary_viewed", "serial": "01"})),
    ] {
        let (s, v) = w
            .post_event(&token, &session, incident, event_body(key, event.clone()))
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{event}"
        );
    }
    assert_eq!(w.events(w.a, incident).await, before);
}

// ---------------------------------------------------------------------------------------------
// The desk

#[tokio::test]
async fn the_desk_without_a_cookie_redirects_to_login() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    for path in [
        "/dispatch".to_owned(),
        "/dispatch/list".to_owned(),
        format!("/dispatch/incidents/{incident}"),
        "/admin".to_owned(),
    ] {
        let resp = w.send(w.get(&path, None)).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(resp.headers()[header::LOCATION], "/login", "{path}");
    }
    // A made-up cookie is no better.
    let resp = w.send(w.get("/dispatch", Some("ems_session=forged"))).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/login");
    // Nor can a form create an incident.
    let resp = w
        .send(w.form(
            "/dispatch/incidents",
            None,
            "location=x&category=chest_pain&note=&team=".into(),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let listed = w
        .store
        .incidents(
            w.a,
            IncidentFilter {
                open_only: false,
                team: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "only the store-made incident");
}

#[tokio::test]
async fn a_crew_account_cannot_log_in_to_the_desk() {
    let w = world().await;
    let resp = w.desk_login(A_CODE, "crew10").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(session_cookie(&resp), None);

    // A crew session token from a terminal is no desk session either.
    let (_, _, crew_session) = w.crew(w.a, "中原救急1", "crew10").await;
    let resp = w
        .send(w.get("/dispatch", Some(&format!("ems_session={crew_session}"))))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/login");

    // The dispatcher with the same password does get in.
    let cookie = w.desk(A_CODE, "dispatcher").await;
    let resp = w.send(w.get("/dispatch", Some(&cookie))).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_dispatcher_of_another_bureau_gets_404_for_an_incident_made_at_the_desk() {
    let w = world().await;
    let a_desk = w.desk(A_CODE, "dispatcher").await;
    let team = w.team(w.a, "中原救急1").await;
    let resp = w
        .send(w.form(
            "/dispatch/incidents",
            Some(&a_desk),
            format!(
                "location=%E5%B7%9D%E5%B4%8E%E5%B8%82%E4%B8%AD%E5%8E%9F%E5%8C%BA&category=chest_pain&note=&card_prep=1&team={team}"
            ),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let record = w
        .store
        .incidents(
            w.a,
            IncidentFilter {
                open_only: true,
                team: Some(team),
                limit: 1,
            },
        )
        .await
        .unwrap()
        .pop()
        .expect("the desk created and assigned the incident");
    assert_eq!(record.log.assigned_team(), Some(team));
    let path = format!("/dispatch/incidents/{}", record.id);

    let resp = w.send(w.get(&path, Some(&a_desk))).await;
    assert_eq!(resp.status(), StatusCode::OK, "A's own dispatcher sees it");

    let b_desk = w.desk(B_CODE, "dispatcher").await;
    let (s, v) = json_of(w.send(w.get(&path, Some(&b_desk))).await).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "incident_not_found"));
    // Nor can B close or reassign it.
    let (s, v) = json_of(
        w.send(w.form(&format!("{path}/close"), Some(&b_desk), String::new()))
            .await,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "incident_not_found"));
    let b_team = w.team(w.b, "中原救急1").await;
    let (s, v) = json_of(
        w.send(w.form(
            &format!("{path}/assign"),
            Some(&b_desk),
            format!("team={b_team}"),
        ))
        .await,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "incident_not_found"));
    assert_eq!(
        w.store.incident(w.a, record.id).await.unwrap().unwrap().log,
        record.log,
        "A's incident is untouched"
    );

    // And the incident reaches the assigned team's terminal.
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    let (s, v) = w
        .call(
            "GET",
            &format!("/api/v1/terminal/incidents/{}", record.id),
            Some(&token),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["category"], "chest_pain");
    assert_eq!(v["card_prep_requested"], true);
}

#[tokio::test]
async fn an_admin_of_another_bureau_cannot_revoke_a_terminal_or_end_its_crews_shift() {
    let w = world().await;
    let (terminal, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    let still_signed_in = || async {
        w.call(
            "GET",
            "/api/v1/terminal/incidents",
            Some(&token),
            Some(&session),
            None,
        )
        .await
    };

    let b_admin = w.desk(B_CODE, "admin").await;
    let resp = w
        .send(w.form(
            &format!("/admin/terminals/{terminal}/revoke"),
            Some(&b_admin),
            String::new(),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (s, v) = still_signed_in().await;
    assert_eq!(
        s,
        StatusCode::OK,
        "B's admin neither revoked A's terminal nor ended its crew's session: {v}"
    );

    // A's own admin can.
    let a_admin = w.desk(A_CODE, "admin").await;
    let resp = w
        .send(w.form(
            &format!("/admin/terminals/{terminal}/revoke"),
            Some(&a_admin),
            String::new(),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (s, v) = still_signed_in().await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "terminal_revoked")
    );
}
