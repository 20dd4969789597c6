#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `ems` router driven in process (`tower::ServiceExt::oneshot`) on a real `EmsSqlite` file,
//! with a real provider (its router on a SQLite file, served on a loopback port, trusting a
//! test JPKI CA): crew sign-in, terminal credentials and revocation, team and bureau
//! boundaries, the per-patient viewing rule attacked the way a misuser would (swapped card,
//! takeover team, withdrawn consent, forged outcome, replay), the successful summary, malformed
//! input, idempotent events, device times, the desk's sign-in and tenancy, and a dead provider.

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use base64::Engine;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use myna_domain::alerts::AlertTable;
use myna_domain::incident::{Actor, ComplaintCategory, EventKind};
use myna_ems::{Ems, router};
use myna_pki::{KeyPool, TestCa, TrustAnchor};
use myna_provider::{BearerTokens, Provider};
use myna_store::ems::{BureauId, EmsStore, IncidentFilter, NewEvent};
use myna_store::testsuite::sample_person;
use myna_store::{ChainReport, Organisation, ProviderStore, hash_secret};
use myna_store_sqlite::{EmsSqlite, SqliteStore};
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

/// The provider's clock and the persons' "today" (`testsuite::today`).
fn provider_now() -> DateTime<Utc> {
    "2026-11-24T03:00:00Z".parse().unwrap()
}

/// The test CA the provider trusts, and one card key (generating RSA keys is slow: once).
fn pki() -> &'static (TestCa, KeyPool) {
    static P: OnceLock<(TestCa, KeyPool)> = OnceLock::new();
    P.get_or_init(|| {
        (
            TestCa::generate(provider_now()).unwrap(),
            KeyPool::generate(1).unwrap(),
        )
    })
}

/// Card A's and card B's serials: two insured persons the provider knows.
const CARD_A: &str = "01AA00000042";
const CARD_B: &str = "01AA00000043";

/// The JPKI authentication certificate of a card, base64.
fn cert(serial: &str) -> String {
    let (ca, keys) = pki();
    let der = ca
        .issue_auth_cert(
            serial,
            &keys.key(0).to_public_key(),
            provider_now() - chrono::Duration::days(10),
            provider_now() + chrono::Duration::days(1000),
        )
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(der)
}

fn summary_body() -> Vec<u8> {
    summary_of(CARD_A)
}

fn summary_of(serial: &str) -> Vec<u8> {
    json!({ "certificate": cert(serial) })
        .to_string()
        .into_bytes()
}

/// Tap 2 as one request: the consent for the card and the view.
fn consent_and_view(serial: &str, key: &str) -> Vec<u8> {
    json!({
        "certificate": cert(serial),
        "consent": { "idempotency_key": key, "device_at_ms": now_ms(), "consent": { "kind": "obtained" } },
    })
    .to_string()
    .into_bytes()
}

fn face(serial: &str) -> Value {
    json!({ "kind": "identity_confirmed", "certificate": cert(serial) })
}

fn consent(serial: &str) -> Value {
    json!({ "kind": "consent", "certificate": cert(serial), "consent": { "kind": "obtained" } })
}

const PROVIDER_SECRET: &str = "0123456789abcdef0123456789abcdef";

/// A provider on a loopback port that knows the persons of cards A and B and trusts the test
/// CA; bureau A's credential is registered there. Answers its base URL and its store.
async fn start_provider(dir: &std::path::Path) -> (String, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::open(&dir.join("provider.db")).unwrap());
    store
        .load_persons(vec![sample_person(1, CARD_A), sample_person(2, CARD_B)])
        .await
        .unwrap();
    store
        .add_organisation(
            Organisation {
                id: A_CODE.into(),
                name: "川崎市消防局".into(),
            },
            hash_secret(PROVIDER_SECRET),
        )
        .await
        .unwrap();
    let app = myna_provider::router(Provider {
        store: store.clone(),
        auth: BearerTokens::new(),
        anchor: TrustAnchor::from_der(pki().0.cert_der()).unwrap(),
        alerts: AlertTable::builtin().unwrap(),
        clock: Arc::new(provider_now),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), store)
}

/// Writes a file only its owner may read, as `ems` requires of a credential.
fn private_file(path: &std::path::Path, content: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(content.as_bytes()).unwrap();
}

struct World {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    store: Arc<EmsSqlite>,
    app: axum::Router,
    ems: Arc<Ems<EmsSqlite>>,
    provider: Arc<SqliteStore>,
    provider_url: String,
    /// Kawasaki, and a second bureau seeded from the same template (same team names, same
    /// logins), so only the bureau tells them apart.
    a: BureauId,
    b: BureauId,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let (provider, provider_store) = start_provider(dir.path()).await;
    let store = Arc::new(EmsSqlite::open(&dir.path().join("ems.db")).unwrap());
    let seed = |code: &str| {
        let file = dir.path().join(format!("{code}.token"));
        private_file(&file, &format!("{code}.{PROVIDER_SECRET}\n"));
        let mut s =
            myna_ems::seed::kawasaki(&provider, file.to_str().unwrap(), |_, _| password_hash());
        s.code = code.into();
        s
    };
    let a = store.seed_bureau(seed(A_CODE)).await.unwrap();
    let b = store.seed_bureau(seed(B_CODE)).await.unwrap();
    let ems = Arc::new(Ems::new(store.clone(), Arc::new(chrono::Utc::now)));
    World {
        dir: dir.path().to_owned(),
        _dir: dir,
        store,
        app: router(ems.clone()),
        ems,
        provider: provider_store,
        provider_url: provider,
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
            .header(header::HOST, "ems.test")
            .header(header::ORIGIN, "http://ems.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        let mut body = body;
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
            // The page's form carries its session's token.
            let session = c.strip_prefix("ems_session=").unwrap_or(c);
            let sep = if body.is_empty() { "" } else { "&" };
            body = format!("{body}{sep}csrf={}", myna_web::csrf::token(session));
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
    for (key, event) in [("face", face(CARD_A)), ("consent", consent(CARD_A))] {
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

    // Consent alone is not enough: the face check comes first, so it is not even recorded.
    let (s, v) = w
        .post_event(
            &token,
            &session,
            incident,
            event_body("consent", consent(CARD_A)),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "identity_not_confirmed")
    );
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
        .post_event(&token, &session, second, event_body("face", face(CARD_A)))
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
    w.point_bureau_a_at(DEAD_PROVIDER).await;
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
    for (key, event) in [("face", face(CARD_A)), ("consent", consent(CARD_A))] {
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

    let bodies: [&[u8]; 10] = [
        b"{not json",
        b"",
        br#"{"idempotency_key": "k", "device_at_ms": null}"#,
        br#"{"idempotency_key": "k", "device_at_ms": null, "event": {"kind": "teleported"}}"#,
        br#"{"idempotency_key": "k", "device_at_ms": null, "event": {"kind": "phase", "phase": "lunch"}}"#,
        br#"{"idempotency_key": "k", "device_at_ms": null, "event": {"kind": "phase", "phase": "arrival"}, "extra": 1}"#,
        br#"{"idempotency_key": "", "device_at_ms": null, "event": {"kind": "phase", "phase": "arrival"}}"#,
        // The face check without the card's certificate, or with one that is not DER.
        br#"{"idempotency_key": "k", "device_at_ms": null, "event": {"kind": "identity_confirmed"}}"#,
        br#"{"idempotency_key": "k", "device_at_ms": null, "event": {"kind": "identity_confirmed", "certificate": "AAAA"}}"#,
        br#"{"idempotency_key": "k", "device_at_ms": null, "event": {"kind": "consent", "consent": {"kind": "obtained"}}}"#,
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
            event_body(&long_key, json!({"kind": "phase", "phase": "arrival"})),
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
async fn a_dispatcher_kind_a_posted_view_or_a_forged_viewed_outcome_is_refused() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    let own_team = w.team(w.a, "中原救急1").await;
    let before = w.events(w.a, incident).await;
    // Not in the crew's vocabulary at all: refused before anything is read.
    for (key, event) in [
        ("a1", json!({"kind": "assigned", "team": 1})),
        ("a2", json!({"kind": "assigned", "team": own_team})),
        (
            "c1",
            json!({"kind": "created", "location": "x", "category": "trauma",
                   "note": "", "card_prep_requested": false}),
        ),
        ("v1", json!({"kind": "summary_viewed", "serial": "01"})),
        (
            "v2",
            json!({"kind": "summary_viewed", "patient": "00", "view": "full"}),
        ),
    ] {
        let (s, v) = w
            .post_event(&token, &session, incident, event_body(key, event.clone()))
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "malformed_request"),
            "{event}"
        );
    }
    // "Viewed" is derived by ems from its own view log, never posted.
    let (s, v) = w
        .post_event(
            &token,
            &session,
            incident,
            event_body("o1", json!({"kind": "outcome", "outcome": "viewed"})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    assert_eq!(w.events(w.a, incident).await, before);
    assert!(w.store.view_records(A_CODE, 10).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// The per-patient viewing rule, attacked

impl World {
    async fn summary(
        &self,
        token: &str,
        session: &str,
        incident: i64,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        self.call(
            "POST",
            &format!("/api/v1/terminal/incidents/{incident}/summary"),
            Some(token),
            Some(session),
            Some(body),
        )
        .await
    }

    async fn ok_event(&self, token: &str, session: &str, incident: i64, event: Value) -> Value {
        let (s, v) = self
            .post_event(
                token,
                session,
                incident,
                event_body(&myna_web::random_token(), event),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Tap 1, then tap 2 with the view, for `card`: the crew's whole path; answers the view.
    async fn taps(&self, token: &str, session: &str, incident: i64, card: &str) -> Value {
        self.ok_event(token, session, incident, face(card)).await;
        let (s, v) = self
            .summary(token, session, incident, consent_and_view(card, card))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// The incident's マイナ救急 outcome as the terminal API shows it.
    async fn outcome_of(&self, token: &str, session: &str, incident: i64) -> Value {
        let path = format!("/api/v1/terminal/incidents/{incident}");
        let (_, v) = self
            .call("GET", &path, Some(token), Some(session), None)
            .await;
        v["outcome"].clone()
    }

    async fn views(&self) -> usize {
        self.store.view_records(A_CODE, 100).await.unwrap().len()
    }
}

#[tokio::test]
async fn the_summary_through_ems_after_tap_1_and_one_request_for_tap_2_is_logged_for_its_patient() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    let ack = w.ok_event(&token, &session, incident, face(CARD_A)).await;
    assert_eq!(ack["patient"], 1, "the face check names 傷病者1");

    let (s, v) = w
        .summary(
            &token,
            &session,
            incident,
            consent_and_view(CARD_A, "tap-2"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["patient"], 1);
    assert!(v["summary"]["access_id"].as_i64().unwrap() > 0);
    let alerts: Vec<&str> = v["summary"]["summary"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["class"].as_str())
        .collect();
    assert!(!alerts.is_empty(), "the sample person is on apixaban: {v}");

    let views = w.store.view_records(A_CODE, 10).await.unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].entry.patient_number, 1);
    assert_eq!(views[0].entry.incident_number.len(), 13);
    let kinds = w.events(w.a, incident).await;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| matches!(k, EventKind::Consent { .. }))
            .count(),
        1
    );
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, EventKind::SummaryViewed { .. }))
    );
    assert!(
        !kinds.iter().any(|k| matches!(k, EventKind::Outcome { .. })),
        "\"viewed\" is derived from the view, not recorded beside it"
    );
    assert!(matches!(
        w.store.verify_view_log().await.unwrap(),
        ChainReport::Intact { entries: 1, .. }
    ));

    // The incident view lists the patient with what the team recorded.
    let (s, view) = w
        .call(
            "GET",
            &format!("/api/v1/terminal/incidents/{incident}"),
            Some(&token),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(view["patients"][0]["number"], 1);
    assert_eq!(view["patients"][0]["viewed"], true);
    assert!(!view.to_string().contains(CARD_A), "no serial leaves ems");
}

#[tokio::test]
async fn a_swapped_card_is_refused_in_both_views_and_nothing_is_logged() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    w.taps(&token, &session, incident, CARD_A).await;
    let before = (w.events(w.a, incident).await, w.views().await);

    // Card B goes on the reader; 「全量を表示」 is still on screen.
    for view in ["summary", "full"] {
        let body = json!({ "certificate": cert(CARD_B), "view": view })
            .to_string()
            .into_bytes();
        let (s, v) = w.summary(&token, &session, incident, body).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::CONFLICT, "consent_not_for_this_card"),
            "{view}"
        );
    }
    assert_eq!((w.events(w.a, incident).await, w.views().await), before);
}

#[tokio::test]
async fn a_team_that_takes_over_does_not_inherit_the_first_teams_consent() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    w.ok_event(&token, &session, incident, face(CARD_A)).await;
    w.ok_event(&token, &session, incident, consent(CARD_A))
        .await;

    let other = w.team(w.a, "幸救急1").await;
    w.store
        .append(
            w.a,
            incident,
            NewEvent {
                kind: EventKind::Assigned { team: other },
                actor: Actor::Dispatcher { account: 1 },
                idempotency_key: "reassign".into(),
                device_at_ms: None,
                team_guard: None,
            },
            now_ms(),
        )
        .await
        .unwrap();
    let (_, token2, session2) = w.crew(w.a, "幸救急1", "crew06").await;
    let (s, v) = w
        .summary(&token2, &session2, incident, summary_body())
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "identity_not_confirmed")
    );
    // And the first team lost the incident.
    let (s, v) = w.summary(&token, &session, incident, summary_body()).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "wrong_team"));
    assert_eq!(w.views().await, 0);
}

#[tokio::test]
async fn a_withdrawn_consent_refuses_every_later_view_and_a_new_consent() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    w.taps(&token, &session, incident, CARD_A).await;
    let ack = w
        .ok_event(
            &token,
            &session,
            incident,
            json!({"kind": "consent_withdrawn", "patient": 1}),
        )
        .await;
    assert_eq!(ack["patient"], 1);
    let (s, v) = w.summary(&token, &session, incident, summary_body()).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "consent_withdrawn"));
    let (s, v) = w
        .summary(
            &token,
            &session,
            incident,
            consent_and_view(CARD_A, "again"),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "consent_withdrawn"));
    let (s, v) = w
        .post_event(
            &token,
            &session,
            incident,
            event_body("w9", json!({"kind": "consent_withdrawn", "patient": 9})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "unknown_patient"));
    assert_eq!(w.views().await, 1, "only the view before the withdrawal");
}

#[tokio::test]
async fn two_patients_each_give_their_own_consent_and_the_view_log_shows_both() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    for (n, card) in [(1, CARD_A), (2, CARD_B)] {
        let ack = w.ok_event(&token, &session, incident, face(card)).await;
        assert_eq!(ack["patient"], n);
        let (s, v) = w
            .summary(&token, &session, incident, consent_and_view(card, card))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["patient"], n);
    }
    let mut numbers: Vec<u32> = w
        .store
        .view_records(A_CODE, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.entry.patient_number)
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2]);
    let views = w.store.view_records(A_CODE, 10).await.unwrap();
    assert_ne!(views[0].entry.patient, views[1].entry.patient);
}

#[tokio::test]
async fn a_replayed_tap_2_records_the_consent_once_and_logs_each_view() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    w.ok_event(&token, &session, incident, face(CARD_A)).await;
    let body = consent_and_view(CARD_A, "tap-2");
    for _ in 0..2 {
        let (s, v) = w.summary(&token, &session, incident, body.clone()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let consents = w
        .events(w.a, incident)
        .await
        .into_iter()
        .filter(|k| matches!(k, EventKind::Consent { .. }))
        .count();
    assert_eq!(consents, 1);
    assert_eq!(w.views().await, 2, "every view that left ems is in its log");
    // The same consent key with another card is not a replay but a reuse: refused.
    let (s, v) = w
        .summary(
            &token,
            &session,
            incident,
            consent_and_view(CARD_B, "tap-2"),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "idempotency_key_reused")
    );
}

#[tokio::test]
async fn a_refusal_bars_a_later_exception_for_that_patient_and_is_the_outcome() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    w.ok_event(&token, &session, incident, face(CARD_A)).await;
    w.ok_event(
        &token,
        &session,
        incident,
        json!({"kind": "consent_refused", "certificate": cert(CARD_A)}),
    )
    .await;
    let exception = json!({
        "certificate": cert(CARD_A),
        "consent": { "idempotency_key": "exc", "device_at_ms": now_ms(),
                     "consent": { "kind": "exception", "reason": "altered_consciousness" } },
    })
    .to_string()
    .into_bytes();
    let (s, v) = w.summary(&token, &session, incident, exception).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "consent_refused"));
    assert_eq!(w.views().await, 0);
    assert_eq!(
        w.outcome_of(&token, &session, incident).await,
        json!("consent_refused")
    );
    // Posting the refusal as the incident's outcome is not the crew's to do.
    let (s, v) = w
        .post_event(
            &token,
            &session,
            incident,
            event_body(
                "o",
                json!({"kind": "outcome", "outcome": "consent_refused"}),
            ),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    // A second patient's view makes the incident's outcome "viewed" all the same.
    w.taps(&token, &session, incident, CARD_B).await;
    assert_eq!(
        w.outcome_of(&token, &session, incident).await,
        json!("viewed")
    );
}

#[tokio::test]
async fn a_crew_cannot_take_the_key_of_a_view_ems_will_record() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    let (s, v) = w
        .post_event(
            &token,
            &session,
            incident,
            event_body("ems:view-1", json!({"kind": "phase", "phase": "arrival"})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );
    w.taps(&token, &session, incident, CARD_A).await;
}

#[tokio::test]
async fn device_times_ahead_of_the_server_or_before_the_incident_are_refused_and_late_ones_kept() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    let at = |key: &str, device: i64| {
        json!({ "idempotency_key": key, "device_at_ms": device,
                "event": {"kind": "phase", "phase": "arrival"} })
        .to_string()
        .into_bytes()
    };
    let (s, v) = w
        .post_event(&token, &session, incident, at("ahead", now_ms() + 60_000))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "device_time_ahead"));
    for nonsense in [i64::MAX, i64::MIN, -1] {
        let (s, v) = w
            .post_event(&token, &session, incident, at("nonsense", nonsense))
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "malformed_request"),
            "{nonsense}"
        );
    }
    let (s, v) = w
        .post_event(
            &token,
            &session,
            incident,
            at("early", now_ms() - 3_600_000),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "device_time_before_creation")
    );
    // Queued offline a moment ago, delivered now: kept with its own time.
    let tapped = now_ms() - 2_000;
    let (s, v) = w
        .post_event(&token, &session, incident, at("late", tapped))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let log = w.store.incident(w.a, incident).await.unwrap().unwrap().log;
    let last = log.events.last().unwrap();
    assert_eq!(last.device_at.unwrap().timestamp_millis(), tapped);
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

// ---------------------------------------------------------------------------------------------
// Hostile bodies

mod hostile {
    use super::*;
    use proptest::prelude::*;

    /// Crew events as an attacker would shape them: every kind, with certificates that are
    /// real, another card's, garbage or absent, odd patients, keys and device times.
    fn crew_event() -> impl Strategy<Value = Value> {
        let certificate = prop_oneof![
            Just(Some(cert(CARD_A))),
            Just(Some(cert(CARD_B))),
            "[A-Za-z0-9+/=]{0,40}".prop_map(Some),
            Just(None),
        ];
        let kind = prop_oneof![
            Just("phase"),
            Just("identity_confirmed"),
            Just("consent"),
            Just("consent_refused"),
            Just("consent_withdrawn"),
            Just("outcome"),
            Just("closed"),
            Just("summary_viewed"),
            Just("assigned"),
        ];
        (
            kind,
            certificate,
            any::<u32>(),
            prop_oneof![Just("arrival"), Just("lunch")],
            prop_oneof![Just("viewed"), Just("no_card"), Just("x")],
        )
            .prop_map(|(kind, certificate, patient, phase, outcome)| {
                let mut e = json!({ "kind": kind });
                if let Some(c) = certificate {
                    e["certificate"] = json!(c);
                }
                match kind {
                    "phase" => e["phase"] = json!(phase),
                    "consent" => e["consent"] = json!({"kind": "obtained"}),
                    "consent_withdrawn" => e["patient"] = json!(patient % 4),
                    "outcome" => e["outcome"] = json!(outcome),
                    "assigned" => e["team"] = json!(patient),
                    _ => {}
                }
                e
            })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        let key = prop_oneof![
            "[a-z0-9-]{1,20}",
            Just(String::new()),
            Just("ems:view-1".to_owned()),
        ];
        let device = prop_oneof![
            Just(None),
            any::<i64>().prop_map(Some),
            (-120_000i64..120_000).prop_map(|d| Some(now_ms() + d)),
        ];
        prop_oneof![
            (key, device, crew_event()).prop_map(|(k, d, e)| {
                json!({ "idempotency_key": k, "device_at_ms": d, "event": e })
                    .to_string()
                    .into_bytes()
            }),
            proptest::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever arrives, the answer is a success or a typed refusal, never a server error,
        /// and a refusal appends nothing and logs no view.
        #[test]
        fn a_hostile_event_body_is_answered_and_a_refusal_changes_nothing(
            bodies in proptest::collection::vec(body(), 1..6)
        ) {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let w = world().await;
                let incident = w.incident_for(w.a, "中原救急1").await;
                let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
                for b in bodies {
                    let before = w.events(w.a, incident).await.len();
                    let (s, v) = w.post_event(&token, &session, incident, b.clone()).await;
                    let text = String::from_utf8_lossy(&b).into_owned();
                    assert!(
                        [200, 400, 403, 409].contains(&s.as_u16()),
                        "{s} {v} for {text}"
                    );
                    if s != StatusCode::OK {
                        assert!(!code(&v).is_empty(), "a typed code for {text}");
                        assert_eq!(w.events(w.a, incident).await.len(), before, "{text}");
                    }
                    assert_eq!(w.views().await, 0, "no event body makes a view");
                }
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inquiries (照会)

#[tokio::test]
async fn an_inquiry_is_recorded_for_a_registry_hospital_and_refused_otherwise() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    let declined = |key: &str, hospital: &str, reason: Value| {
        event_body(
            key,
            json!({"kind": "inquiry", "hospital": hospital, "result": "declined", "reason": reason}),
        )
    };
    let before = w.events(w.a, incident).await.len();
    // A hospital the registry does not hold, a decline without its reason, and an unknown
    // reason are refused and append nothing.
    for (key, hospital, reason, status, expected) in [
        (
            "i1",
            "no-such-hospital",
            json!("beds_full"),
            StatusCode::CONFLICT,
            "unknown_hospital",
        ),
        (
            "i2",
            "kanto-rosai",
            Value::Null,
            StatusCode::CONFLICT,
            "inquiry_reason",
        ),
        (
            "i3",
            "kanto-rosai",
            json!("tired"),
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
    ] {
        let body = declined(key, hospital, reason);
        let (s, v) = w.post_event(&token, &session, incident, body).await;
        assert_eq!((s, code(&v)), (status, expected), "{v}");
    }
    assert_eq!(w.events(w.a, incident).await.len(), before);

    let body = declined("i4", "kanto-rosai", json!("beds_full"));
    let (s, v) = w.post_event(&token, &session, incident, body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Another team's tablet cannot record an inquiry for this incident.
    let (_, other, other_session) = w.crew(w.a, "幸救急1", "crew06").await;
    let (s, v) = w
        .post_event(
            &other,
            &other_session,
            incident,
            declined("i5", "ida-municipal", json!("busy")),
        )
        .await;
    assert_eq!(code(&v), "wrong_team", "{s} {v}");

    let (s, view) = w
        .call(
            "GET",
            &format!("/api/v1/terminal/incidents/{incident}"),
            Some(&token),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{view}");
    let inquiries = view["inquiries"].as_array().unwrap();
    assert_eq!(inquiries.len(), 1);
    assert_eq!(inquiries[0]["hospital_name"], "関東労災病院");
    assert_eq!(inquiries[0]["reason"], "beds_full");
    assert_eq!(view["difficult_transport"], false);
}

// ---------------------------------------------------------------------------------------------
// The hospital's side: destination, pre-arrival view, vitals, handoff, acceptance status

impl World {
    async fn statuses(&self, token: &str, session: &str) -> (StatusCode, Value) {
        self.call(
            "GET",
            "/api/v1/terminal/hospitals",
            Some(token),
            Some(session),
            None,
        )
        .await
    }

    async fn body_text(&self, req: Request<Body>) -> (StatusCode, String) {
        let resp = self.send(req).await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[tokio::test]
async fn only_the_destination_hospital_sees_the_patient_with_the_crews_basis_and_signs_the_handoff()
{
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    w.ok_event(&token, &session, incident, face(CARD_A)).await;
    let (s, v) = w
        .summary(&token, &session, incident, consent_and_view(CARD_A, "t2"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let crew_views = w.store.view_records(A_CODE, 10).await.unwrap().len();

    // A destination that never accepted is refused; after 受入可 it is taken.
    let dest = |key: &str, h: &str| {
        event_body(
            key,
            json!({"kind": "destination", "hospital": h, "patients": [1]}),
        )
    };
    let (_, v) = w
        .post_event(&token, &session, incident, dest("d1", "kawasaki-municipal"))
        .await;
    assert_eq!(code(&v), "destination_not_accepted", "{v}");
    let accepted = json!({"kind": "inquiry", "hospital": "kawasaki-municipal", "result": "accepted", "reason": null});
    w.ok_event(&token, &session, incident, accepted).await;
    let chosen = json!({"kind": "destination", "hospital": "kawasaki-municipal", "patients": [1]});
    w.ok_event(&token, &session, incident, chosen).await;

    // Vitals: out of range refused, in range kept and shown.
    let (_, v) = w
        .post_event(
            &token,
            &session,
            incident,
            event_body("v1", json!({"kind": "vitals", "vitals": {"spo2": 120}})),
        )
        .await;
    assert_eq!(code(&v), "vitals_out_of_range", "{v}");
    let vitals = json!({"kind": "vitals", "vitals": {"jcs": 10, "pulse": 112, "blood_pressure": {"systolic": 182, "diastolic": 104}}});
    w.ok_event(&token, &session, incident, vitals).await;

    // The destination's staff: the incoming list, then the patient with alerts and vitals.
    let staff = w.desk(A_CODE, "er-kawasaki-municipal").await;
    let resp = w.send(w.get("/dispatch", Some(&staff))).await;
    assert_eq!(
        resp.headers()[header::LOCATION],
        "/hospital",
        "staff have no desk"
    );
    let number = w
        .store
        .incident(w.a, incident)
        .await
        .unwrap()
        .unwrap()
        .number;
    let (s, list) = w.body_text(w.get("/hospital/list", Some(&staff))).await;
    assert_eq!(s, StatusCode::OK);
    assert!(list.contains(&number), "{list}");
    let page = format!("/hospital/incidents/{incident}");
    let (s, html) = w.body_text(w.get(&page, Some(&staff))).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("川崎　花子"), "the crew's copy, no card read");
    assert!(html.contains("拮抗薬"), "the reversal agent for the DOAC");
    assert!(html.contains("182/104"), "the vitals");
    assert!(html.contains("救急隊が本人の同意を得て閲覧"));
    let resp = w.send(w.get(&page, Some(&staff))).await;
    assert_eq!(
        resp.headers()[header::CACHE_CONTROL],
        "no-store",
        "no copy stays in the browser"
    );
    let views = w.store.view_records(A_CODE, 10).await.unwrap();
    assert_eq!(views.len(), crew_views + 2, "each hospital view is logged");
    let last = &views[0].entry;
    assert_eq!(last.hospital.as_deref(), Some("kawasaki-municipal"));
    assert_eq!(last.crew_member, "er-kawasaki-municipal");
    assert_eq!(last.consent, myna_domain::access::Consent::Obtained);
    assert!(matches!(
        w.store.verify_view_log().await.unwrap(),
        ChainReport::Intact { .. }
    ));

    // The FHIR handoff document: the same copy, logged as a view.
    let json_url = format!("{page}/patients/1/handoff.json");
    let (s, doc) = json_of(w.send(w.get(&json_url, Some(&staff))).await).await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    assert_eq!(doc["type"], "document");
    assert_eq!(doc["entry"][0]["resource"]["resourceType"], "Composition");
    assert!(doc.to_string().contains("182"), "the vitals are in it");
    let pdf_url = format!("{page}/patients/1/handoff.pdf");
    let resp = w.send(w.get(&pdf_url, Some(&staff))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/pdf");
    let pdf = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(pdf.starts_with(b"%PDF-"));
    assert_eq!(
        w.store.view_records(A_CODE, 10).await.unwrap().len(),
        crew_views + 4,
        "the PDF is a view too"
    );

    // Another hospital of the bureau, and the same hospital's account in another bureau,
    // see nothing of it, and nothing is logged.
    for (bureau, login) in [
        (A_CODE, "er-kanto-rosai"),
        (B_CODE, "er-kawasaki-municipal"),
    ] {
        let other = w.desk(bureau, login).await;
        let (_, list) = w.body_text(w.get("/hospital/list", Some(&other))).await;
        assert!(!list.contains(&number), "{login}@{bureau}: {list}");
        for url in [&page, &json_url, &pdf_url] {
            let (s, body) = w.body_text(w.get(url, Some(&other))).await;
            assert_ne!(s, StatusCode::OK, "{login}@{bureau} {url}");
            assert!(!body.contains("川崎　花子"));
        }
        let (s, _) = w
            .body_text(w.form(
                &format!("{page}/receipt"),
                Some(&other),
                "received_by=X".into(),
            ))
            .await;
        assert_ne!(s, StatusCode::SEE_OTHER, "{login}@{bureau} cannot sign");
    }
    assert_eq!(
        w.store.view_records(A_CODE, 10).await.unwrap().len(),
        crew_views + 4
    );

    // The receipt: not before 病着, then once.
    let receipt = |who: &str| {
        w.form(
            &format!("{page}/receipt"),
            Some(&staff),
            format!("received_by={who}"),
        )
    };
    let (s, body) = w.body_text(receipt("山田")).await;
    assert!(body.contains("not_arrived"), "{s} {body}");
    let arrived = json!({"kind": "phase", "phase": "hospital_arrival"});
    w.ok_event(&token, &session, incident, arrived).await;
    let resp = w.send(receipt("救急科 山田")).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, body) = w.body_text(receipt("山田")).await;
    assert!(body.contains("handoff_repeated"), "{body}");
    let kinds = w.events(w.a, incident).await;
    assert!(kinds.iter().any(|k| matches!(k,
        EventKind::Handoff { hospital, received_by } if hospital == "kawasaki-municipal" && received_by == "救急科 山田")));
    let (_, view) = w
        .call(
            "GET",
            &format!("/api/v1/terminal/incidents/{incident}"),
            Some(&token),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(view["handoff"]["received_by"], "救急科 山田");
    assert_eq!(view["destination"]["hospital_name"], "川崎市立川崎病院");
    assert_eq!(view["vitals"]["vitals"]["pulse"], 112);

    // Withdrawal: the hospital loses the copy, and the refusal is not logged as a view.
    let withdraw = json!({"kind": "consent_withdrawn", "patient": 1});
    w.ok_event(&token, &session, incident, withdraw).await;
    let (_, html) = w.body_text(w.get(&page, Some(&staff))).await;
    assert!(!html.contains("川崎　花子"));
    assert!(html.contains("撤回"));
    assert_eq!(
        w.store.view_records(A_CODE, 10).await.unwrap().len(),
        crew_views + 4
    );
}

#[tokio::test]
async fn a_hospital_that_declines_after_being_chosen_loses_the_patient() {
    let w = world().await;
    let incident = w.incident_for(w.a, "中原救急1").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    w.taps(&token, &session, incident, CARD_A).await;
    let answer = |result: &str| {
        json!({"kind": "inquiry", "hospital": "kawasaki-municipal", "result": result,
               "reason": if result == "declined" { json!("beds_full") } else { Value::Null }})
    };
    w.ok_event(&token, &session, incident, answer("accepted"))
        .await;
    w.ok_event(
        &token,
        &session,
        incident,
        json!({"kind": "destination", "hospital": "kawasaki-municipal", "patients": [1]}),
    )
    .await;
    let staff = w.desk(A_CODE, "er-kawasaki-municipal").await;
    let page = format!("/hospital/incidents/{incident}");
    let (s, _) = w.body_text(w.get(&page, Some(&staff))).await;
    assert_eq!(s, StatusCode::OK);
    // The hospital calls back: no bed after all.
    w.ok_event(&token, &session, incident, answer("declined"))
        .await;
    let before = w.store.view_records(A_CODE, 10).await.unwrap().len();
    let (s, body) = w.body_text(w.get(&page, Some(&staff))).await;
    assert_ne!(s, StatusCode::OK, "{body}");
    assert!(!body.contains("川崎　花子"));
    assert_eq!(
        w.store.view_records(A_CODE, 10).await.unwrap().len(),
        before
    );
    // And the desk admin cannot take over a hospital account by resetting its password.
    let admin = w.desk(A_CODE, "admin").await;
    let (_, html) = w
        .body_text(w.form(
            "/admin/password",
            Some(&admin),
            "login=er-kawasaki-municipal&password=a-long-enough-password".into(),
        ))
        .await;
    assert!(
        html.contains("病院職員のパスワードはここでは再設定できません"),
        "{html}"
    );
    let login = "bureau=kawasaki-fd&login=er-kawasaki-municipal&password=a-long-enough-password";
    let resp = w.send(w.form("/login", None, login.into())).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_hospital_sets_its_status_and_only_its_bureaus_tablets_rank_by_it() {
    let w = world().await;
    let staff = w.desk(A_CODE, "er-kawasaki-municipal").await;
    let (_, token, session) = w.crew(w.a, "中原救急1", "crew10").await;
    let (_, b_token, b_session) = w.crew(w.b, "中原救急1", "crew10").await;
    let (s, v) = w.statuses(&token, &session).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["statuses"], json!([]));
    assert_eq!(
        v["stale_after_minutes"], 120,
        "the criteria table's unless the bureau sets one"
    );

    // A form missing a capability, or with a bed count that is no number, changes nothing.
    let (_, html) = w
        .body_text(w.form("/hospital/status", Some(&staff), "beds=2".into()))
        .await;
    assert!(html.contains("の応需を選んでください"), "{html}");
    let registry = myna_domain::hospitals::Registry::shared().unwrap();
    let caps = &registry.get("kawasaki-municipal").unwrap().capabilities;
    let mut form: Vec<String> = caps
        .iter()
        .map(|c| {
            let a = if *c == myna_domain::hospitals::Capability::Neurosurgery {
                "not_accepting"
            } else {
                "accepting"
            };
            format!("cap.{}={a}", c.as_str())
        })
        .collect();
    let (_, html) = w
        .body_text(w.form(
            "/hospital/status",
            Some(&staff),
            format!("{}&beds=many", form.join("&")),
        ))
        .await;
    assert!(html.contains("空床数は"), "{html}");
    let (_, v) = w.statuses(&token, &session).await;
    assert_eq!(v["statuses"], json!([]));

    form.push("beds=3".into());
    form.push("note=%E8%84%B3%E5%A4%96%E6%89%8B%E8%A1%93%E4%B8%AD".into());
    let (s, html) = w
        .body_text(w.form("/hospital/status", Some(&staff), form.join("&")))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("応需情報を更新しました"), "{html}");
    assert!(html.contains("脳外手術中"));
    let (_, v) = w.statuses(&token, &session).await;
    let st = &v["statuses"][0];
    assert_eq!(st["hospital_id"], "kawasaki-municipal");
    assert_eq!(st["beds"], 3);
    assert!(
        st["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!(["neurosurgery", "not_accepting"]))
    );
    let (_, v) = w.statuses(&b_token, &b_session).await;
    assert_eq!(v["statuses"], json!([]), "another bureau's tablets");
    // A crew session is no hospital session.
    let resp = w.send(w.get("/hospital", None)).await;
    assert_eq!(resp.headers()[header::LOCATION], "/login");
}

#[tokio::test]
async fn the_board_shows_each_teams_status_and_offers_available_teams_nearest_first() {
    let w = world().await;
    let desk = w.desk(A_CODE, "dispatcher").await;
    // 麻生救急1 is on scene elsewhere.
    let busy = w.incident_for(w.a, "麻生救急1").await;
    let (_, token, session) = w.crew(w.a, "麻生救急1", "crew27").await;
    w.ok_event(
        &token,
        &session,
        busy,
        json!({"kind": "phase", "phase": "arrival"}),
    )
    .await;
    // A new call in 麻生区, not yet assigned.
    let resp = w
        .send(w.form(
            "/dispatch/incidents",
            Some(&desk),
            "location=%E5%B7%9D%E5%B4%8E%E5%B8%82%E9%BA%BB%E7%94%9F%E5%8C%BA%E4%B8%87%E7%A6%8F%E5%AF%BA1&category=fever&team=".into(),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (s, html) = w.body_text(w.get("/dispatch/list", Some(&desk))).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains(r#"data-team="麻生救急1" data-status="on_scene""#),
        "{html}"
    );
    assert!(html.contains(r#"data-team="中原救急1" data-status="available""#));
    let select = html
        .split(r#"<select name="team""#)
        .nth(1)
        .expect("the unassigned call offers teams");
    let options: Vec<&str> = select
        .split("<option")
        .skip(1)
        .map(|o| o.split('>').nth(1).unwrap_or(""))
        .collect();
    assert!(
        options[0].starts_with("麻生救急2（待機・0.0km"),
        "the nearest available team first: {options:?}"
    );
    let first_busy = options.iter().position(|o| o.contains("現場活動")).unwrap();
    assert!(
        options[..first_busy].iter().all(|o| o.contains("待機")),
        "{options:?}"
    );
    assert!(options[first_busy].starts_with("麻生救急1"));
}

// ---------------------------------------------------------------------------------------------
// The privacy officer's review and the statistics, attacked across bureaus, roles and origins

/// A crew's view without consent, recorded in `code`'s view log.
async fn exception_view(w: &World, code: &str, serial: &str) -> myna_store::ChainPosition {
    use myna_domain::access::{Consent, ExceptionReason};
    w.store
        .record_view(myna_domain::incident::ViewRecord {
            at_ms: now_ms(),
            bureau: code.into(),
            incident_number: "20260101-0001".into(),
            team: "中原救急1".into(),
            crew_member: "crew10".into(),
            terminal: 1,
            patient: myna_domain::patient::PatientSecret::from_bytes([9; 32]).patient(serial),
            patient_number: 1,
            consent: Consent::Exception {
                reason: ExceptionReason::Unconscious,
            },
            view: myna_domain::summary::View::Summary,
            provider_access_id: 1,
            hospital: None,
        })
        .await
        .unwrap()
}

async fn body_text(resp: Response<Body>) -> String {
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_privacy_officer_decides_only_on_their_own_bureaus_views_once_from_their_own_pages() {
    let w = world().await;
    let ours = exception_view(&w, A_CODE, "01AA0001").await;
    let theirs = exception_view(&w, B_CODE, "01AA0002").await;
    // SQLite keeps one chain for every bureau: both are in partition 0, so only the bureau
    // tells them apart.
    assert_eq!(ours.partition, theirs.partition);
    let officer = w.desk(A_CODE, "privacy").await;
    let decided = |bureau: &'static str| {
        let store = w.store.clone();
        async move { store.reviews(bureau).await.unwrap().len() }
    };
    let path = |at: myna_store::ChainPosition| format!("/review/{}/{}", at.partition, at.seq);

    // Another bureau's view: not found, to read or to decide.
    let resp = w.send(w.get(&path(theirs), Some(&officer))).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = w
        .send(w.form(&path(theirs), Some(&officer), "decision=justified".into()))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(decided(B_CODE).await, 0);
    let queue = body_text(w.send(w.get("/review", Some(&officer))).await).await;
    assert!(queue.contains(&path(ours)) && !queue.contains(&path(theirs)));

    // A form from another origin, or without the page's token, records nothing.
    let session = officer.strip_prefix("ems_session=").unwrap();
    let forged = Request::builder()
        .method("POST")
        .uri(path(ours))
        .header(header::HOST, "ems.test")
        .header(header::ORIGIN, "http://evil.test")
        .header(header::COOKIE, &officer)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "decision=justified&csrf={}",
            myna_web::csrf::token(session)
        )))
        .unwrap();
    assert_eq!(w.send(forged).await.status(), StatusCode::FORBIDDEN);
    let tokenless = Request::builder()
        .method("POST")
        .uri(path(ours))
        .header(header::HOST, "ems.test")
        .header(header::ORIGIN, "http://ems.test")
        .header(header::COOKIE, &officer)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("decision=justified"))
        .unwrap();
    assert_eq!(w.send(tokenless).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(decided(A_CODE).await, 0);

    // The dispatcher and the admin are not the officer: sent to the desk, nothing recorded.
    for login in ["dispatcher", "admin"] {
        let desk = w.desk(A_CODE, login).await;
        let resp = w
            .send(w.form(&path(ours), Some(&desk), "decision=justified".into()))
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{login}");
        assert_eq!(resp.headers()[header::LOCATION], "/dispatch", "{login}");
        let resp = w.send(w.get("/review/crew", Some(&desk))).await;
        assert_eq!(resp.headers()[header::LOCATION], "/dispatch", "{login}");
    }
    // A crew session is no browser session at all.
    let (_, _, crew_session) = w.crew(w.a, "中原救急1", "crew10").await;
    let resp = w
        .send(w.get("/review", Some(&format!("ems_session={crew_session}"))))
        .await;
    assert_eq!(resp.headers()[header::LOCATION], "/login");
    assert_eq!(decided(A_CODE).await, 0);

    // The officer's own decision is recorded once; the same form sent again changes nothing.
    let decide = || {
        w.form(
            &path(ours),
            Some(&officer),
            "decision=justified&comment=JCS+300".into(),
        )
    };
    let resp = w.send(decide()).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/review");
    let again = w.send(decide()).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(body_text(again).await.contains("審査済み"));
    assert_eq!(decided(A_CODE).await, 1);
    assert_eq!(decided(B_CODE).await, 0);
    // An unknown decision is refused on the page and records nothing more.
    let bad = w
        .send(w.form(&path(ours), Some(&officer), "decision=maybe".into()))
        .await;
    assert_eq!(bad.status(), StatusCode::OK);
    assert_eq!(decided(A_CODE).await, 1);

    // The officer reaches nothing of the desk.
    for p in ["/dispatch", "/stats", "/admin", "/stats/monthly.csv"] {
        let resp = w.send(w.get(p, Some(&officer))).await;
        assert_eq!(resp.headers()[header::LOCATION], "/review", "{p}");
    }
}

#[tokio::test]
async fn a_bureaus_statistics_count_its_own_incidents_only() {
    let w = world().await;
    w.incident_for(w.a, "中原救急1").await;
    w.incident_for(w.a, "幸救急1").await;
    let year = chrono::Utc::now()
        .with_timezone(&myna_domain::stats::JST)
        .format("%Y")
        .to_string();
    let dispatches = |page: &str| {
        let at = page.find("id=\"total-dispatches\">").unwrap() + "id=\"total-dispatches\">".len();
        page[at..].split('<').next().unwrap().to_owned()
    };
    let ours = w.desk(A_CODE, "dispatcher").await;
    let page = body_text(
        w.send(w.get(&format!("/stats?year={year}"), Some(&ours)))
            .await,
    )
    .await;
    assert_eq!(dispatches(&page), "2");
    let theirs = w.desk(B_CODE, "dispatcher").await;
    let page = body_text(
        w.send(w.get(&format!("/stats?year={year}"), Some(&theirs)))
            .await,
    )
    .await;
    assert_eq!(
        dispatches(&page),
        "0",
        "bureau B sees none of A's incidents"
    );
    let csv = body_text(
        w.send(w.get(&format!("/stats/monthly.csv?year={year}"), Some(&theirs)))
            .await,
    )
    .await;
    assert!(csv.lines().last().unwrap().starts_with("年計,0,"), "{csv}");
    // A year outside the range is a plain refusal, not an error page of the store.
    let resp = w.send(w.get("/stats?year=99999", Some(&ours))).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

impl World {
    /// Points bureau A at the provider at `url`, with its own credential file.
    async fn point_bureau_a_at(&self, url: &str) {
        let file = self.dir.join("kawasaki-fd.token");
        self.store
            .set_provider(self.a, url, file.to_str().unwrap())
            .await
            .unwrap();
    }

    /// Bureau A's crew views card A's summary (consent, tap 2); answers the view-log entry.
    async fn crew_viewed_card_a(&self) -> myna_domain::incident::ViewRecord {
        let incident = self.incident_for(self.a, "中原救急1").await;
        let (_, token, session) = self.crew(self.a, "中原救急1", "crew10").await;
        self.ok_event(&token, &session, incident, face(CARD_A))
            .await;
        let (s, v) = self
            .summary(&token, &session, incident, consent_and_view(CARD_A, "t2"))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        self.store.view_records(A_CODE, 1).await.unwrap()[0]
            .entry
            .clone()
    }
}

/// The view-log entry of 川崎市立川崎病院's staff reading `crew`'s copy, `i` ms after a minute
/// past the provider's time, as the hospital screen writes it.
fn hospital_read_of(
    crew: &myna_domain::incident::ViewRecord,
    i: i64,
) -> myna_domain::incident::ViewRecord {
    myna_domain::incident::ViewRecord {
        at_ms: provider_now().timestamp_millis() + 60_000 + i,
        crew_member: "er-kawasaki-municipal".into(),
        terminal: 0,
        hospital: Some("kawasaki-municipal".into()),
        ..crew.clone()
    }
}

/// A hospital's read of the crew's copy reaches the provider's log through the relay: not
/// while the provider is down (tried again, nothing lost), then once, in the chain of the
/// person the crew's access read, naming the registry's hospital; a second round sends
/// nothing; a read whose crew access the provider does not hold is refused for good, not
/// retried. (The hospital screen queuing the read is in the test above and in the stores'
/// conformance suite; here the read is written as that screen writes it, at the provider's
/// time, because this world's provider runs on a fixed clock.)
#[tokio::test]
async fn a_hospitals_read_is_reported_to_the_provider_once_even_after_it_was_down() {
    use myna_domain::person::PersonId;
    use myna_ems::relay::{RelayRound, relay_due};
    let w = world().await;
    let crew_view = w.crew_viewed_card_a().await;
    let crew_access = w.provider.access_log_for(PersonId(1), 10).await.unwrap();
    assert_eq!(crew_access.len(), 1);

    let read = hospital_read_of(&crew_view, 0);
    w.point_bureau_a_at(DEAD_PROVIDER).await;
    let at = w.store.record_view(read.clone()).await.unwrap();
    assert_eq!(
        relay_due(&w.ems).await.unwrap(),
        RelayRound {
            retried: 1,
            ..Default::default()
        }
    );
    assert_eq!(
        w.provider
            .access_log_for(PersonId(1), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let waiting = w.store.due_hospital_reads(i64::MAX, 10).await.unwrap();
    assert_eq!(waiting.len(), 1, "kept for the next try");
    assert_eq!((waiting[0].at, waiting[0].attempts), (at, 1));

    w.point_bureau_a_at(&w.provider_url).await;
    // The first retry waits a second.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(
        relay_due(&w.ems).await.unwrap(),
        RelayRound {
            delivered: 1,
            ..Default::default()
        }
    );
    assert_eq!(relay_due(&w.ems).await.unwrap(), RelayRound::default());
    let history = w.provider.access_log_for(PersonId(1), 10).await.unwrap();
    assert_eq!(
        history.len(),
        2,
        "the crew's access, then the hospital's read"
    );
    let (logged_at, logged) = &history[0];
    assert_eq!(logged_at.partition, crew_access[0].0.partition);
    let hospital = myna_domain::hospitals::Registry::shared()
        .unwrap()
        .get("kawasaki-municipal")
        .unwrap()
        .clone();
    let h = logged.entry.hospital_read.as_ref().unwrap();
    assert_eq!(h.source_access_id, crew_view.provider_access_id);
    assert_eq!(h.hospital_name, hospital.name);
    assert_eq!(h.institution_code, hospital.institution_code);
    assert_eq!(h.read_at_ms, read.at_ms);
    assert_eq!(h.ems_view_seq, at.seq);
    assert_eq!(logged.entry.viewer.crew_member, "er-kawasaki-municipal");
    assert_eq!(logged.entry.organisation_id, A_CODE);
    assert_eq!(logged.entry.incident_ref, crew_view.incident_number);
    assert!(matches!(
        w.provider.verify_access_log().await.unwrap(),
        ChainReport::Intact { entries: 2, .. }
    ));

    // A read of a copy no provider answered (`simulate` writes 0 for its views).
    w.store
        .record_view(myna_domain::incident::ViewRecord {
            provider_access_id: 0,
            ..read
        })
        .await
        .unwrap();
    assert_eq!(
        relay_due(&w.ems).await.unwrap(),
        RelayRound {
            refused: 1,
            ..Default::default()
        }
    );
    assert!(
        w.store
            .due_hospital_reads(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty(),
        "refused for good, not tried again"
    );
    assert_eq!(
        w.provider
            .access_log_for(PersonId(1), 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

/// The relay goes past a read it cannot send: a read whose view-log entry was damaged in the
/// file is refused for good and the next one is delivered; a bureau whose provider takes the
/// connection and never answers is asked once a round, not once per read, and its reads wait
/// for the next round.
#[tokio::test]
async fn the_relay_goes_past_a_damaged_read_and_asks_a_silent_provider_once_a_round() {
    use myna_ems::relay::{RelayRound, relay_due};
    let w = world().await;
    let crew_view = w.crew_viewed_card_a().await;
    let read = |i: i64| hospital_read_of(&crew_view, i);
    let damaged = w.store.record_view(read(0)).await.unwrap();
    w.store.record_view(read(1)).await.unwrap();
    rusqlite::Connection::open(w.dir.join("ems.db"))
        .unwrap()
        .execute(
            "UPDATE view_log SET entry = x'00' WHERE seq = ?1",
            [damaged.seq],
        )
        .unwrap();
    assert_eq!(
        relay_due(&w.ems).await.unwrap(),
        RelayRound {
            delivered: 1,
            refused: 1,
            ..Default::default()
        }
    );

    // A provider that takes connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    w.point_bureau_a_at(&silent_url).await;
    for i in 2..5 {
        w.store.record_view(read(i)).await.unwrap();
    }
    let mut ems = Ems::new(w.store.clone(), Arc::new(chrono::Utc::now));
    ems.provider_timeout = std::time::Duration::from_millis(300);
    assert_eq!(
        relay_due(&ems).await.unwrap(),
        RelayRound {
            retried: 3,
            ..Default::default()
        }
    );
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one connection for the bureau's three reads"
    );
    assert_eq!(
        w.store
            .due_hospital_reads(i64::MAX, 10)
            .await
            .unwrap()
            .len(),
        3
    );
}
