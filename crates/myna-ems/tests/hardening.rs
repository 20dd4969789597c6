#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `ems` router attacked the way the security review did, on a real `EmsSqlite` file:
//! a flood of sign-ins against the bounded password pool, password guessing against the rate
//! limits and the lockout (and the admin who clears it), error bodies that must not echo the
//! database, and the provider credential kept out of the database.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use myna_ems::sign_in::SignInPolicy;
use myna_ems::{Ems, router};
use myna_store::ems::{BureauId, EmsStore, LockoutPolicy};
use myna_store::hash_secret;
use myna_store_sqlite::EmsSqlite;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";
const CODE: &str = "kawasaki-fd";
const OTHER_CODE: &str = "sagamihara-fd";
const PROVIDER_CREDENTIAL: &str = "kawasaki-fd.0123456789abcdef0123456789abcdef";

fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| myna_ems::auth::hash_password(PASSWORD).unwrap())
        .clone()
}

struct World {
    dir: tempfile::TempDir,
    store: Arc<EmsSqlite>,
    ems: Arc<Ems<EmsSqlite>>,
    app: axum::Router,
    bureau: BureauId,
}

/// Generous limits, so that each test turns on only the one it attacks.
fn open_policy() -> SignInPolicy {
    SignInPolicy {
        per_ip_burst: 10_000,
        per_ip_every: Duration::from_millis(1),
        per_account_burst: 10_000,
        per_account_every: Duration::from_millis(1),
        lockout: LockoutPolicy {
            lock_after: 1_000,
            lock_ms: 60_000,
        },
        hash_workers: 1,
        hash_queue: 4,
    }
}

async fn world(policy: SignInPolicy) -> World {
    let dir = tempfile::tempdir().unwrap();
    let credential = dir.path().join("provider.token");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&credential)
            .unwrap();
        f.write_all(PROVIDER_CREDENTIAL.as_bytes()).unwrap();
    }
    let store = Arc::new(EmsSqlite::open(&dir.path().join("ems.db")).unwrap());
    let seed = myna_ems::seed::kawasaki(
        "http://127.0.0.1:9",
        credential.to_str().unwrap(),
        |_, _| password_hash(),
    );
    let bureau = store.seed_bureau(seed).await.unwrap();
    // A second bureau with the same logins: only the bureau tells them apart.
    let mut other = myna_ems::seed::kawasaki(
        "http://127.0.0.1:9",
        credential.to_str().unwrap(),
        |_, _| password_hash(),
    );
    other.code = OTHER_CODE.into();
    store.seed_bureau(other).await.unwrap();
    let ems =
        Arc::new(Ems::new(store.clone(), Arc::new(chrono::Utc::now)).with_sign_in_policy(policy));
    World {
        dir,
        store,
        app: router(ems.clone()),
        ems,
        bureau,
    }
}

async fn text_of(resp: Response<Body>) -> (StatusCode, String) {
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn desk_login(login: &str, password: &str, from: Option<&str>) -> Request<Body> {
    desk_login_at(CODE, login, password, from)
}

fn desk_login_at(bureau: &str, login: &str, password: &str, from: Option<&str>) -> Request<Body> {
    let mut req = Request::builder()
        .method("POST")
        .uri("/login")
        .header(header::HOST, "ems.test")
        .header(header::ORIGIN, "http://ems.test")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "bureau={bureau}&login={}&password={}",
            form_encode(login),
            form_encode(password)
        )))
        .unwrap();
    if let Some(addr) = from {
        req.extensions_mut()
            .insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
    }
    req
}

/// A form post from the page of the session in `cookie` (`ems_session=…`), with its token.
fn desk_form(path: &str, cookie: &str, fields: &str) -> Request<Body> {
    let session = cookie.strip_prefix("ems_session=").unwrap();
    let sep = if fields.is_empty() { "" } else { "&" };
    Request::builder()
        .method("POST")
        .uri(path)
        .header(header::HOST, "ems.test")
        .header(header::ORIGIN, "http://ems.test")
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "{fields}{sep}csrf={}",
            myna_web::csrf::token(session)
        )))
        .unwrap()
}

/// A tablet's request for its team's incidents.
fn crew_incidents(token: &str, session: &str) -> Request<Body> {
    Request::builder()
        .uri("/api/v1/terminal/incidents")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("x-crew-session", session)
        .body(Body::empty())
        .unwrap()
}

impl World {
    async fn send(&self, req: Request<Body>) -> Response<Body> {
        self.app.clone().oneshot(req).await.unwrap()
    }

    /// A registered tablet of 中原救急1 with crew10 signed in through the store (no password,
    /// so no hashing): its bearer and session.
    async fn crew_without_hashing(&self) -> (String, String) {
        let team = self
            .store
            .teams(self.bureau)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.name == "中原救急1")
            .unwrap()
            .id;
        let token = myna_web::random_token();
        let terminal = self
            .store
            .add_terminal(self.bureau, team, "tablet", hash_secret(&token))
            .await
            .unwrap();
        let crew = self
            .store
            .account(self.bureau, "crew10")
            .await
            .unwrap()
            .unwrap();
        let session = myna_web::random_token();
        self.store
            .create_session(
                hash_secret(&session),
                crew.id,
                Some(terminal),
                chrono::Utc::now().timestamp_millis() + 3_600_000,
            )
            .await
            .unwrap();
        (token, session)
    }

    async fn crew_sign_in(&self, token: &str, login: &str, password: &str) -> (StatusCode, Value) {
        let req = Request::builder()
            .method("POST")
            .uri("/api/v1/terminal/sign-in")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({ "login": login, "password": password }).to_string(),
            ))
            .unwrap();
        let (s, text) = text_of(self.send(req).await).await;
        (s, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn admin_cookie(&self) -> String {
        let resp = self.send(desk_login("admin", PASSWORD, None)).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let set = resp.headers()[header::SET_COOKIE].to_str().unwrap();
        set.split(';').next().unwrap().trim().to_owned()
    }

    async fn admin_page(&self, cookie: &str) -> String {
        let req = Request::builder()
            .uri("/admin")
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        let (s, text) = text_of(self.send(req).await).await;
        assert_eq!(s, StatusCode::OK);
        text
    }
}

#[tokio::test]
async fn a_flood_of_sign_ins_runs_one_hash_at_a_time_and_the_crews_requests_still_pass() {
    let w = world(open_policy()).await;
    let (token, session) = w.crew_without_hashing().await;
    let flood: Vec<_> = (0..200)
        .map(|i| {
            let app = w.app.clone();
            tokio::spawn(async move {
                let resp = app
                    .oneshot(desk_login(&format!("guess{i}"), "wrong", None))
                    .await
                    .unwrap();
                let retry = resp.headers().get(header::RETRY_AFTER).cloned();
                (resp.status(), retry)
            })
        })
        .collect();
    // A crew request in the middle of the flood is answered.
    let req = crew_incidents(&token, &session);
    let (s, body) = text_of(w.send(req).await).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // And a crew member signs in on a tablet meanwhile: the tablets hash on a pool of their own.
    let (s, v) = w.crew_sign_in(&token, "crew10", PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let (mut refused, mut busy) = (0, 0);
    for t in flood {
        match t.await.unwrap() {
            (StatusCode::UNAUTHORIZED, _) => refused += 1,
            (StatusCode::SERVICE_UNAVAILABLE, Some(retry)) => {
                assert_eq!(retry, "1");
                busy += 1;
            }
            other => panic!("a sign-in was answered {other:?}"),
        }
    }
    assert_eq!(refused + busy, 200);
    assert!(busy > 0, "200 at once do not all wait for one worker");
    assert!(refused > 0, "the pool did verify some");
    assert_eq!(
        w.ems.sign_in_guard.browser_pool.peak(),
        1,
        "never more argon2 computations at once than the pool's workers"
    );
}

#[tokio::test]
async fn guessing_one_desk_account_locks_it_and_only_this_bureaus_admin_sees_and_clears_the_lock() {
    let w = world(SignInPolicy {
        lockout: LockoutPolicy {
            lock_after: 3,
            lock_ms: 15 * 60_000,
        },
        ..open_policy()
    })
    .await;
    for expected in [
        StatusCode::UNAUTHORIZED,
        StatusCode::UNAUTHORIZED,
        StatusCode::LOCKED,
    ] {
        let (s, page) = text_of(w.send(desk_login("dispatcher", "guess", None)).await).await;
        assert_eq!(s, expected);
        if s == StatusCode::LOCKED {
            assert!(page.contains("ロックされています"), "{page}");
        }
    }
    // The right password does not open a locked account.
    let (s, _) = text_of(w.send(desk_login("dispatcher", PASSWORD, None)).await).await;
    assert_eq!(s, StatusCode::LOCKED);
    let locked = w
        .store
        .account(w.bureau, "dispatcher")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        locked.failed_logins, 3,
        "attempts while locked are not hashed"
    );

    // The admin sees it, with the time the lock ends, and clears it.
    let cookie = w.admin_cookie().await;
    let page = w.admin_page(&cookie).await;
    let row = page
        .split("<tr>")
        .find(|r| r.contains("<td>dispatcher</td>"))
        .expect("the locked account is listed");
    assert!(row.contains("3回") && row.contains("ロック中"), "{row}");
    let req = desk_form("/admin/unlock", &cookie, "login=dispatcher");
    let (s, page) = text_of(w.send(req).await).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("dispatcher のロックを解除しました"), "{page}");
    assert!(!page.contains("<td>dispatcher</td>"), "no longer listed");
    let resp = w.send(desk_login("dispatcher", PASSWORD, None)).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "signed in after the unlock"
    );

    // Guessing a crew member's password on the desk's page neither reaches nor locks it.
    for _ in 0..5 {
        let (s, _) = text_of(w.send(desk_login("crew10", "guess", None)).await).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let crew = w.store.account(w.bureau, "crew10").await.unwrap().unwrap();
    assert_eq!((crew.failed_logins, crew.locked_until_ms), (0, None));

    // A dispatcher cannot clear locks; another bureau's admin clears only their own.
    let set = resp.headers()[header::SET_COOKIE].to_str().unwrap();
    let dispatcher = set.split(';').next().unwrap().trim().to_owned();
    for _ in 0..3 {
        w.send(desk_login("dispatcher", "guess", None)).await;
    }
    let now = || chrono::Utc::now().timestamp_millis();
    let locked = || async {
        w.store
            .account(w.bureau, "dispatcher")
            .await
            .unwrap()
            .unwrap()
            .is_locked(now())
    };
    assert!(locked().await);
    let resp = w
        .send(desk_form("/admin/unlock", &dispatcher, "login=dispatcher"))
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let other_admin = {
        let resp = w
            .send(desk_login_at(OTHER_CODE, "admin", PASSWORD, None))
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let set = resp.headers()[header::SET_COOKIE].to_str().unwrap();
        set.split(';').next().unwrap().trim().to_owned()
    };
    let page = w.admin_page(&other_admin).await;
    assert!(
        !page.contains("<td>dispatcher</td>"),
        "another bureau's lock is not listed"
    );
    w.send(desk_form("/admin/unlock", &other_admin, "login=dispatcher"))
        .await;
    assert!(
        locked().await,
        "another bureau's admin cleared this bureau's lock"
    );
}

#[tokio::test]
async fn a_crew_tablet_gets_account_locked_and_a_password_reset_lifts_it() {
    let w = world(SignInPolicy {
        lockout: LockoutPolicy {
            lock_after: 2,
            lock_ms: 15 * 60_000,
        },
        ..open_policy()
    })
    .await;
    let (token, _) = w.crew_without_hashing().await;
    let (s, v) = w.crew_sign_in(&token, "crew10", "guess").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("bad_credentials"))
    );
    let (s, v) = w.crew_sign_in(&token, "crew10", "guess").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::LOCKED, Some("account_locked"))
    );
    let (s, v) = w.crew_sign_in(&token, "crew10", PASSWORD).await;
    assert_eq!(v["error"]["code"], "account_locked", "{s}");

    let cookie = w.admin_cookie().await;
    let new_password = "a new password of the shift";
    let req = desk_form(
        "/admin/password",
        &cookie,
        &format!("login=crew10&password={}", form_encode(new_password)),
    );
    let (s, _) = text_of(w.send(req).await).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = w.crew_sign_in(&token, "crew10", new_password).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn attempts_past_the_accounts_or_the_addresss_burst_are_429_before_any_hashing() {
    let w = world(SignInPolicy {
        per_account_burst: 2,
        per_account_every: Duration::from_secs(3600),
        // Every attempt counts for the address, the one refused for the account too.
        per_ip_burst: 4,
        per_ip_every: Duration::from_secs(3600),
        ..open_policy()
    })
    .await;
    let from = Some("192.0.2.7:50000");
    for _ in 0..2 {
        let resp = w.send(desk_login("dispatcher", "guess", from)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = w.send(desk_login("dispatcher", "guess", from)).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    let (_, page) = text_of(resp).await;
    assert!(page.contains("ログインの試行が多すぎます"), "{page}");
    assert_eq!(
        w.store
            .account(w.bureau, "dispatcher")
            .await
            .unwrap()
            .unwrap()
            .failed_logins,
        2,
        "the refused attempt was not verified or counted"
    );
    // The address has one attempt left, on another account; then it is refused too.
    let resp = w.send(desk_login("admin", "guess", from)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = w.send(desk_login("admin", PASSWORD, from)).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another address still signs in.
    let resp = w
        .send(desk_login("admin", PASSWORD, Some("198.51.100.3:40000")))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_database_failure_answers_the_code_and_never_the_databases_message() {
    let w = world(open_policy()).await;
    let (token, session) = w.crew_without_hashing().await;
    // Someone breaks the file under the running service.
    let raw = rusqlite::Connection::open(w.dir.path().join("ems.db")).unwrap();
    raw.execute_batch("PRAGMA foreign_keys = OFF; DROP TABLE incident_event; DROP TABLE incident;")
        .unwrap();
    let req = crew_incidents(&token, &session);
    let (s, text) = text_of(w.send(req).await).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "storage_unavailable");
    assert_eq!(v["error"]["message"], "storage is unavailable");
    for leak in ["no such table", "incident", "SQL", "sqlite"] {
        assert!(!text.contains(leak), "the body names {leak:?}: {text}");
    }
}

#[tokio::test]
async fn the_provider_credential_is_not_in_the_database_and_a_file_others_can_read_is_refused() {
    let w = world(open_policy()).await;
    let bureau = w.store.bureau(CODE).await.unwrap().unwrap();
    assert_eq!(
        myna_ems::read_credential(std::path::Path::new(&bureau.provider_credential_file)).unwrap(),
        PROVIDER_CREDENTIAL
    );
    drop(w.store.clone());
    for name in ["ems.db", "ems.db-wal"] {
        let path = w.dir.path().join(name);
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !bytes
                    .windows(PROVIDER_CREDENTIAL.len())
                    .any(|x| x == PROVIDER_CREDENTIAL.as_bytes()),
                "{name} holds the provider credential"
            );
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let file = std::path::Path::new(&bureau.provider_credential_file);
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = myna_ems::read_credential(file).unwrap_err();
    assert!(refused.contains("chmod 600"), "{refused}");
}

async fn incident_count(w: &World) -> usize {
    w.store
        .incidents(
            w.bureau,
            myna_store::ems::IncidentFilter {
                open_only: false,
                team: None,
                limit: 100,
            },
        )
        .await
        .unwrap()
        .len()
}

/// The guard's own refusal (the handler's refusals say other things).
const REFUSED_AS_CROSS_SITE: &str = "この操作は受け付けられません";

const NEW_INCIDENT: &str = "location=%E5%B7%9D%E5%B4%8E%E5%B8%82&category=chest_pain&note=&team=";

#[tokio::test]
async fn a_desk_form_from_another_origin_or_without_its_sessions_token_changes_nothing() {
    let w = world(open_policy()).await;
    let cookie = w.admin_cookie().await;
    let other = w.admin_cookie().await;
    let session = cookie.strip_prefix("ems_session=").unwrap();
    let forged = |origin: Option<&str>, fetch_site: Option<&str>, token: Option<String>| {
        let mut req = Request::builder()
            .method("POST")
            .uri("/dispatch/incidents")
            .header(header::HOST, "ems.test")
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        if let Some(s) = fetch_site {
            req = req.header("sec-fetch-site", s);
        }
        let body = match token {
            Some(t) => format!("{NEW_INCIDENT}&csrf={t}"),
            None => NEW_INCIDENT.to_owned(),
        };
        req.body(Body::from(body)).unwrap()
    };
    let own = Some(myna_web::csrf::token(session));
    let attacks = [
        (
            "another site, with the token",
            forged(Some("https://evil.example"), None, own.clone()),
        ),
        (
            "a sibling port",
            forged(Some("http://ems.test:8080"), None, own.clone()),
        ),
        ("no origin at all", forged(None, None, own.clone())),
        (
            "same-site, not same-origin",
            forged(None, Some("same-site"), own.clone()),
        ),
        (
            "own origin, no token",
            forged(Some("http://ems.test"), None, None),
        ),
        ("own origin, another session's token", {
            let t = myna_web::csrf::token(other.strip_prefix("ems_session=").unwrap());
            forged(Some("http://ems.test"), None, Some(t))
        }),
        (
            "own origin, a made-up token",
            forged(Some("http://ems.test"), None, Some("x".into())),
        ),
    ];
    for (what, req) in attacks {
        let resp = w.send(req).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{what}");
    }
    assert_eq!(
        incident_count(&w).await,
        0,
        "no forged form made an incident"
    );
    // The page's own form does.
    let resp = w
        .send(forged(Some("http://ems.test"), None, own.clone()))
        .await;
    assert_ne!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(incident_count(&w).await, 1);
    let resp = w.send(forged(None, Some("same-origin"), own)).await;
    assert_ne!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(incident_count(&w).await, 2);

    // Signing in from another site is refused too (login CSRF).
    let mut req = desk_login("admin", PASSWORD, None);
    req.headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    assert_eq!(w.send(req).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_no_inline_script() {
    let w = world(open_policy()).await;
    let cookie = w.admin_cookie().await;
    for path in [
        "/login",
        "/dispatch",
        "/admin",
        "/dispatch/list",
        "/static/ems.js",
        "/healthz",
    ] {
        let req = Request::builder()
            .uri(path)
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        let resp = w.send(req).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self';"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert_eq!(h[header::REFERRER_POLICY], "same-origin", "{path}");
        let (_, text) = text_of(resp).await;
        if path != "/static/ems.js" {
            for tag in text.match_indices("<script").map(|(i, _)| &text[i..]) {
                let open = &tag[..tag.find('>').unwrap()];
                assert!(
                    open.contains(" src=\"/static/"),
                    "{path}: inline script {open}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_sign_out_ends_the_desks_open_push_stream() {
    use http_body_util::BodyExt;
    let w = world(open_policy()).await;
    let dispatcher = {
        let resp = w.send(desk_login("dispatcher", PASSWORD, None)).await;
        let set = resp.headers()[header::SET_COOKIE].to_str().unwrap();
        set.split(';').next().unwrap().trim().to_owned()
    };
    let admin = w.admin_cookie().await;
    let req = Request::builder()
        .uri("/dispatch/stream")
        .header(header::COOKIE, &dispatcher)
        .body(Body::empty())
        .unwrap();
    let resp = w.send(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();

    // While signed in, a change arrives.
    w.send(desk_form("/dispatch/incidents", &admin, NEW_INCIDENT))
        .await;
    let frame = tokio::time::timeout(Duration::from_secs(20), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(frame.data_ref().unwrap()).into_owned();
    assert!(text.contains("event: incident"), "{text}");

    // Signed out elsewhere (the same session), the next change ends the stream instead.
    let resp = w.send(desk_form("/logout", &dispatcher, "")).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    w.send(desk_form("/dispatch/incidents", &admin, NEW_INCIDENT))
        .await;
    let mut seen = String::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), body.frame()).await {
            Ok(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    seen.push_str(&String::from_utf8_lossy(d));
                }
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => panic!("{e}"),
            Err(_) => panic!("the stream stayed open after the sign-out: {seen}"),
        }
    }
    assert!(seen.contains("event: signed_out"), "{seen}");
    assert!(
        !seen.contains("event: incident"),
        "nothing was pushed after the sign-out: {seen}"
    );
}

#[tokio::test]
async fn a_browser_with_an_ended_sessions_cookie_still_signs_in_and_two_session_cookies_are_refused()
 {
    let w = world(open_policy()).await;
    let mut req = desk_login("dispatcher", PASSWORD, None);
    req.headers_mut().insert(
        header::COOKIE,
        "ems_session=ended-long-ago".parse().unwrap(),
    );
    assert_eq!(w.send(req).await.status(), StatusCode::SEE_OTHER);

    // A second session cookie (planted by a sibling site with a longer path) makes neither a
    // session nor a form go through.
    let cookie = w.admin_cookie().await;
    let both = format!("ems_session=planted; {cookie}");
    let req = Request::builder()
        .uri("/dispatch")
        .header(header::COOKIE, &both)
        .body(Body::empty())
        .unwrap();
    let resp = w.send(req).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/login");
    let mut req = desk_form("/dispatch/incidents", &cookie, NEW_INCIDENT);
    req.headers_mut()
        .insert(header::COOKIE, both.parse().unwrap());
    assert_eq!(w.send(req).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(incident_count(&w).await, 0);
}

#[tokio::test]
async fn a_hospital_read_asked_for_by_another_site_is_refused_before_it_is_logged() {
    let w = world(open_policy()).await;
    let resp = w
        .send(desk_login("er-kawasaki-municipal", PASSWORD, None))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = resp.headers()[header::SET_COOKIE].to_str().unwrap();
    let staff = set.split(';').next().unwrap().trim().to_owned();
    for path in [
        "/hospital/incidents/1",
        "/hospital/incidents/1/patients/1/handoff.json",
        "/hospital/incidents/1/patients/1/handoff.pdf",
    ] {
        for site in ["cross-site", "same-site"] {
            let req = Request::builder()
                .uri(path)
                .header(header::COOKIE, &staff)
                .header("sec-fetch-site", site)
                .body(Body::empty())
                .unwrap();
            let (s, body) = text_of(w.send(req).await).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path} {site}");
            assert!(
                body.contains(REFUSED_AS_CROSS_SITE),
                "{path} {site}: {body}"
            );
        }
        // Our own page's link reaches the handler (which refuses: no such patient here).
        let req = Request::builder()
            .uri(path)
            .header(header::COOKIE, &staff)
            .header("sec-fetch-site", "same-origin")
            .body(Body::empty())
            .unwrap();
        let (_, body) = text_of(w.send(req).await).await;
        assert!(!body.contains(REFUSED_AS_CROSS_SITE), "{path}: {body}");
    }
    assert!(
        w.store.view_records(CODE, 10).await.unwrap().is_empty(),
        "nothing was logged"
    );
}

#[tokio::test]
async fn over_tls_the_session_cookie_is_secure_and_host_prefixed_and_the_plain_name_is_no_session()
{
    let w = world(open_policy()).await;
    let mut ems = Ems::new(w.store.clone(), Arc::new(chrono::Utc::now));
    ems.tls = true;
    let app = router(Arc::new(ems));
    let resp = app
        .clone()
        .oneshot(desk_login("admin", PASSWORD, None))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = resp.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set.starts_with("__Host-ems_session="), "{set}");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(!set.contains("Domain"), "{set}");
    let pair = set.split(';').next().unwrap().to_owned();
    let page = |cookie: String| {
        Request::builder()
            .uri("/admin")
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap()
    };
    let resp = app.clone().oneshot(page(pair.clone())).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // The same value under the plain name (which a sibling site could set) is no session.
    let plain = pair.replacen("__Host-ems_session=", "ems_session=", 1);
    let resp = app.clone().oneshot(page(plain)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_request_for_a_host_name_that_is_not_ours_is_misdirected() {
    let w = world(open_policy()).await;
    let mut ems = Ems::new(w.store.clone(), Arc::new(chrono::Utc::now));
    ems.allowed_hosts = Some(Arc::new(myna_web::security::AllowedHosts::for_listener(
        "127.0.0.1:8441".parse().unwrap(),
        &[],
    )));
    let app = router(Arc::new(ems));
    let get = |host: &str, path: &str| {
        Request::builder()
            .uri(path)
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    };
    // A page on a name the attacker controls, rebound to ems's address, gets nothing.
    let resp = app
        .clone()
        .oneshot(get("rebind.example:8441", "/login"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::MISDIRECTED_REQUEST);
    let mut login = desk_login("admin", PASSWORD, None);
    login
        .headers_mut()
        .insert(header::HOST, "rebind.example:8441".parse().unwrap());
    login.headers_mut().insert(
        header::ORIGIN,
        "http://rebind.example:8441".parse().unwrap(),
    );
    let resp = app.clone().oneshot(login).await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::MISDIRECTED_REQUEST,
        "no password is tried"
    );
    // Our own name passes, and a load balancer's probe answers on any.
    let resp = app
        .clone()
        .oneshot(get("127.0.0.1:8441", "/login"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app.oneshot(get("10.9.9.9:80", "/healthz")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// The admin page's enrollment controls, attacked: an invitation for another bureau's team,
/// approving another bureau's request, a form without its token, and a label written to
/// inject markup. Only the bureau's own request, approved with the form's token, becomes a
/// terminal of the invitation's team.
#[tokio::test]
async fn the_admin_page_opens_lists_and_cancels_invitations_and_approves_only_its_own_bureaus_requests()
 {
    use myna_store::ems::{EnrollmentLimits, Filing, NewEnrollment};
    let w = world(open_policy()).await;
    let ca = myna_tls::devca::new_named_ca("test device CA", (2026, 11, 1)).unwrap();
    let mut ems = Ems::new(w.store.clone(), Arc::new(chrono::Utc::now));
    ems.device_ca = Some(Arc::new(myna_ems::enroll::DeviceCa::new(
        ca.cert_pem,
        ca.key_pem,
    )));
    let app = router(Arc::new(ems));
    let send = |req: Request<Body>| {
        let app = app.clone();
        async move { text_of(app.oneshot(req).await.unwrap()).await }
    };
    let other = w.store.bureau(OTHER_CODE).await.unwrap().unwrap();
    let team_of = |bureau: BureauId| {
        let store = w.store.clone();
        async move {
            store
                .teams(bureau)
                .await
                .unwrap()
                .into_iter()
                .find(|t| t.name == "中原救急1")
                .unwrap()
                .id
        }
    };
    let (ours, theirs) = (team_of(w.bureau).await, team_of(other.id).await);
    let cookie = w.admin_cookie().await;

    // An invitation for this bureau's team shows its secret once; another bureau's team gets
    // none.
    let (s, page) = send(desk_form(
        "/admin/enrollment-invites",
        &cookie,
        &format!("team={ours}"),
    ))
    .await;
    assert_eq!(s, StatusCode::OK);
    let secret = page
        .split("<code>")
        .nth(1)
        .and_then(|r| r.split("</code>").next())
        .expect("the invitation's secret is shown")
        .to_owned();
    let (s, _) = send(desk_form(
        "/admin/enrollment-invites",
        &cookie,
        &format!("team={theirs}"),
    ))
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // A request in this bureau with a label made to inject markup, and one in the other.
    let file = |bureau: BureauId, invite: String, label: &str| {
        let store = w.store.clone();
        let label = label.to_owned();
        async move {
            let request = myna_tls::identity::new_request("t").unwrap();
            let Filing::Filed(id) = store
                .request_enrollment(
                    bureau,
                    NewEnrollment {
                        invite_hash: hash_secret(&invite),
                        label,
                        code: "0000-0001".into(),
                        csr_pem: request.csr_pem,
                        poll_hash: hash_secret(&myna_web::random_token()),
                        requested_from: "192.0.2.9".into(),
                    },
                    EnrollmentLimits::default(),
                    chrono::Utc::now().timestamp_millis(),
                )
                .await
                .unwrap()
            else {
                panic!("not filed");
            };
            id
        }
    };
    let mine = file(w.bureau, secret, "<script>alert(1)</script>").await;
    let their_secret = myna_ems::enroll::invite(
        w.store.as_ref(),
        &other,
        theirs,
        "their admin",
        chrono::Utc::now().timestamp_millis(),
    )
    .await
    .unwrap()
    .unwrap();
    let foreign = file(other.id, their_secret, "their tablet").await;

    let page = {
        let req = Request::builder()
            .uri("/admin")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        send(req).await.1
    };
    assert!(
        page.contains("&#60;script&#62;alert(1)"),
        "the label is shown escaped: {page}"
    );
    assert!(!page.contains("<script>alert"), "the label was injected");
    assert!(
        !page.contains("their tablet"),
        "another bureau's request is listed"
    );

    // Approving the other bureau's request from this admin page: nothing happens there.
    let (_, page) = send(desk_form(
        &format!("/admin/enrollments/{foreign}/approve"),
        &cookie,
        "",
    ))
    .await;
    assert!(page.contains("承認待ちではありません"), "{page}");
    assert!(w.store.terminals(other.id).await.unwrap().is_empty());
    // Without the form's token: refused, nothing approved.
    let no_token = Request::builder()
        .method("POST")
        .uri(format!("/admin/enrollments/{mine}/approve"))
        .header(header::HOST, "ems.test")
        .header(header::ORIGIN, "http://ems.test")
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    let (s, _) = send(no_token).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(w.store.terminals(w.bureau).await.unwrap().is_empty());

    let (s, _) = send(desk_form(
        &format!("/admin/enrollments/{mine}/approve"),
        &cookie,
        "",
    ))
    .await;
    assert_eq!(s, StatusCode::OK);
    let terminals = w.store.terminals(w.bureau).await.unwrap();
    assert_eq!(terminals.len(), 1);
    assert_eq!(terminals[0].team_id, ours);
    assert!(terminals[0].certificate_bound);

    // Open invitations are listed for their own bureau's admin, who can cancel them; the
    // other bureau's cannot be cancelled from here.
    let now = || chrono::Utc::now().timestamp_millis();
    myna_ems::enroll::invite(
        w.store.as_ref(),
        &w.store.bureau_by_id(w.bureau).await.unwrap().unwrap(),
        ours,
        "admin",
        now(),
    )
    .await
    .unwrap()
    .unwrap();
    myna_ems::enroll::invite(w.store.as_ref(), &other, theirs, "their admin", now())
        .await
        .unwrap()
        .unwrap();
    let mine_open = w.store.open_invites(w.bureau, now()).await.unwrap();
    let theirs_open = w.store.open_invites(other.id, now()).await.unwrap();
    assert_eq!((mine_open.len(), theirs_open.len()), (1, 1));
    let page = {
        let req = Request::builder()
            .uri("/admin")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        send(req).await.1
    };
    assert!(
        page.contains(&format!(
            "/admin/enrollment-invites/{}/cancel",
            mine_open[0].id
        )),
        "{page}"
    );
    assert!(!page.contains(&format!(
        "/admin/enrollment-invites/{}/cancel",
        theirs_open[0].id
    )));
    let (_, page) = send(desk_form(
        &format!("/admin/enrollment-invites/{}/cancel", theirs_open[0].id),
        &cookie,
        "",
    ))
    .await;
    assert!(page.contains("有効な招待ではありません"), "{page}");
    assert_eq!(
        w.store.open_invites(other.id, now()).await.unwrap().len(),
        1
    );
    // Without the form's token: refused, still open.
    let no_token = Request::builder()
        .method("POST")
        .uri(format!(
            "/admin/enrollment-invites/{}/cancel",
            mine_open[0].id
        ))
        .header(header::HOST, "ems.test")
        .header(header::ORIGIN, "http://ems.test")
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(no_token).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        w.store.open_invites(w.bureau, now()).await.unwrap().len(),
        1
    );
    let (s, page) = send(desk_form(
        &format!("/admin/enrollment-invites/{}/cancel", mine_open[0].id),
        &cookie,
        "",
    ))
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("取り消しました"), "{page}");
    assert!(
        w.store
            .open_invites(w.bureau, now())
            .await
            .unwrap()
            .is_empty()
    );
}
