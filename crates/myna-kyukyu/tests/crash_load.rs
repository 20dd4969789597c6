#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Crash safety of the real services: `ems` and `provider` run as processes under a load of crew
//! events and summary requests from four tablets, and are killed with SIGKILL at random moments
//! and restarted. Afterwards every event ems acknowledged is in its database exactly once,
//! every summary a tablet received has its view in ems's log and its access in the provider's
//! log, and both audit chains verify (`audit verify`, as an operator runs it).

use base64::Engine;
use myna_domain::incident::{Actor, ComplaintCategory, EventKind};
use myna_store::ems::{EmsStore, NewEvent};
use myna_store::{ChainReport, ProviderStore};
use myna_store_sqlite::{EmsSqlite, SqliteStore};
use myna_terminal::ems_client::{CallError, EmsClient};
use myna_wire::terminal::{ConsentTap, CrewEvent, EventBody, SummaryBody};
use rand::RngExt;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_myna-kyukyu"))
}

/// A free loopback port below the ephemeral range (so that no outgoing connection takes it
/// while a killed service is down), bound once to check, then released for the service.
fn free_port() -> u16 {
    let mut rng = rand::rng();
    loop {
        let port = rng.random_range(20_000..30_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

struct Service {
    name: &'static str,
    args: Vec<String>,
    health: String,
    child: Option<Child>,
}

impl Service {
    fn start(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let child = bin()
                .args(&self.args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            self.child = Some(child);
            // Up when /healthz answers (a port in TIME_WAIT may refuse the first bind).
            while Instant::now() < deadline {
                if healthy(&self.health) {
                    return;
                }
                if let Some(c) = self.child.as_mut()
                    && c.try_wait().unwrap().is_some()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(Instant::now() < deadline, "{} did not come back", self.name);
        }
    }

    /// SIGKILL: a crash, not a shutdown.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

fn healthy(url: &str) -> bool {
    Command::new("curl")
        .args(["-fsS", "-o", "/dev/null", "--max-time", "1", "-k", url])
        .status()
        .is_ok_and(|s| s.success())
}

/// What the tablets were told: events acknowledged (incident, key) and summaries received
/// (provider access id).
#[derive(Default)]
struct Acks {
    events: BTreeSet<(i64, String)>,
    access_ids: BTreeSet<i64>,
}

fn transient(e: &CallError) -> bool {
    match e {
        CallError::Offline(_) => true,
        CallError::Refused { code, .. } => code.is_transient(),
    }
}

async fn tablet(
    client: EmsClient,
    incident: i64,
    certificate: String,
    worker: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acks: Arc<Mutex<Acks>>,
) {
    use std::sync::atomic::Ordering;
    let mut session: Option<String> = None;
    let mut consented = false;
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let s = match &session {
            Some(s) => s.clone(),
            None => match client.sign_in("crew10", "crew-2026-demo").await {
                Ok(signed) => {
                    session = Some(signed.session.clone());
                    signed.session
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // A face check, sent until ems answers, under one key (the outbox's rule).
        let key = format!("w{worker}-{i}");
        let body = EventBody {
            idempotency_key: key.clone(),
            device_at_ms: Some(chrono::Utc::now().timestamp_millis()),
            event: CrewEvent::IdentityConfirmed {
                certificate: certificate.clone(),
            },
        };
        loop {
            match client.post_event(&s, incident, &body).await {
                Ok(_) => {
                    acks.lock().unwrap().events.insert((incident, key.clone()));
                    break;
                }
                Err(e) if transient(&e) => {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                Err(e) => panic!("event {key} refused: {e}"),
            }
        }
        // The summary, with the consent the first time.
        let summary = SummaryBody {
            certificate: certificate.clone(),
            view: Default::default(),
            consent: (!consented).then(|| ConsentTap {
                idempotency_key: format!("c{worker}-{i}"),
                device_at_ms: Some(chrono::Utc::now().timestamp_millis()),
                consent: myna_domain::access::Consent::Obtained,
            }),
        };
        match client.summary(&s, incident, &summary).await {
            Ok(answer) => {
                consented = true;
                acks.lock()
                    .unwrap()
                    .access_ids
                    .insert(answer.summary.access_id);
            }
            Err(e) if transient(&e) => {}
            Err(e) => panic!("summary refused: {e}"),
        }
        i += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_events_and_views_survive_sigkill_of_ems_and_the_provider_under_load() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    // The demo seeds everything: persons, cards, the bureau, tablets, the development CA.
    let seeded = bin()
        .args(["demo", "--persons", "300", "--exit-after-samples"])
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--ems-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--terminal-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--portal-listen", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(seeded.success(), "demo seeding failed");

    // Four incidents of 中原救急1, made by the dispatcher through the store.
    let incidents = {
        let store = EmsSqlite::open(&data.join("ems.db")).unwrap();
        let bureau = store.bureau("kawasaki-fd").await.unwrap().unwrap();
        let team = store
            .teams(bureau.id)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.name == "中原救急1")
            .unwrap()
            .id;
        let mut ids = Vec::new();
        for n in 0..4 {
            let ev = |kind: EventKind, key: String| NewEvent {
                kind,
                actor: Actor::Dispatcher { account: 1 },
                idempotency_key: key,
                device_at_ms: None,
                team_guard: None,
            };
            let now = chrono::Utc::now().timestamp_millis();
            let created = ev(
                EventKind::Created {
                    location: "川崎市中原区小杉町3丁目".into(),
                    category: ComplaintCategory::ChestPain,
                    note: String::new(),
                    card_prep_requested: true,
                },
                format!("create-{n}"),
            );
            let id = store
                .create_incident(bureau.id, created, now)
                .await
                .unwrap()
                .id;
            store
                .append(
                    bureau.id,
                    id,
                    ev(EventKind::Assigned { team }, format!("assign-{n}")),
                    now,
                )
                .await
                .unwrap();
            ids.push(id);
        }
        ids
    };

    let tls = data.join("tls");
    let provider_port = free_port();
    let ems_port = free_port();
    // The provider's address in ems.db is the demo's: point the bureau at this run's.
    let provider_url = format!("https://127.0.0.1:{provider_port}");
    let o = bin()
        .args(["ems", "set-provider", "--provider-url", &provider_url])
        .arg("--db")
        .arg(data.join("ems.db"))
        .arg("--provider-token-file")
        .arg(data.join("provider.token"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let mut provider = Service {
        name: "provider",
        args: vec![
            "provider".into(),
            "serve".into(),
            "--db".into(),
            s(&data.join("provider.db")),
            "--ca-cert".into(),
            s(&data.join("pki/ca.cert.der")),
            "--listen".into(),
            format!("127.0.0.1:{provider_port}"),
            "--tls-cert".into(),
            s(&tls.join("provider.pem")),
            "--tls-key".into(),
            s(&tls.join("provider.key")),
        ],
        health: format!("{provider_url}/healthz"),
        child: None,
    };
    let ems_url = format!("http://127.0.0.1:{ems_port}");
    let mut ems = Service {
        name: "ems",
        args: vec![
            "ems".into(),
            "serve".into(),
            "--db".into(),
            s(&data.join("ems.db")),
            "--listen".into(),
            format!("127.0.0.1:{ems_port}"),
            "--provider-ca".into(),
            s(&tls.join("ca.pem")),
        ],
        health: format!("{ems_url}/healthz"),
        child: None,
    };
    provider.start();
    ems.start();

    // The demo's tablets hold certificates; this ems is on loopback without a device CA, where
    // a tablet's credential is a bearer token.
    let token_file = data.join("crash-tablet.token");
    let o = bin()
        .args(["ems", "terminal", "add", "--team", "中原救急1", "--db"])
        .arg(data.join("ems.db"))
        .arg("--token-file")
        .arg(&token_file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let certificate = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(data.join("cards/doac.cert.der")).unwrap());
    let client_tls = myna_tls::platform_client_config().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Acks::default()));
    let workers: Vec<_> = incidents
        .iter()
        .enumerate()
        .map(|(w, &incident)| {
            let client = EmsClient::new(&ems_url, &token, client_tls.clone()).unwrap();
            tokio::spawn(tablet(
                client,
                incident,
                certificate.clone(),
                w,
                stop.clone(),
                acks.clone(),
            ))
        })
        .collect();

    // Kill ems and the provider in turn, at random moments under load, eight times, each
    // restarted at once; the tablets must make progress after every restart.
    let mut rng = rand::rng();
    let mut kills = BTreeMap::<&str, u32>::new();
    for round in 0..8 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1200))).await;
        let target = if round % 2 == 0 {
            &mut ems
        } else {
            &mut provider
        };
        let before = acks.lock().unwrap().events.len();
        assert!(before > 0 || round == 0, "no load before kill {round}");
        target.kill();
        *kills.entry(target.name).or_default() += 1;
        tokio::task::block_in_place(|| target.start());
    }
    let after_last_restart = acks.lock().unwrap().access_ids.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        acks.lock().unwrap().access_ids.len() > after_last_restart,
        "no summary got through after the last restart"
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("a tablet did not stop")
            .unwrap();
    }
    // The end is a crash too.
    ems.kill();
    provider.kill();

    let acks = std::mem::take(&mut *acks.lock().unwrap());
    assert!(
        acks.events.len() > 20,
        "too little load: {} events",
        acks.events.len()
    );
    assert!(!acks.access_ids.is_empty(), "no summary got through");

    // Every acknowledged event is there (and once: the key is unique per incident, so a
    // resend after a crash is answered, not stored again).
    let store = EmsSqlite::open(&data.join("ems.db")).unwrap();
    let bureau = store.bureau("kawasaki-fd").await.unwrap().unwrap();
    let mut stored: BTreeMap<(i64, String), usize> = BTreeMap::new();
    for &id in &incidents {
        let record = store.incident(bureau.id, id).await.unwrap().unwrap();
        for e in record.log.events {
            *stored.entry((id, e.idempotency_key.clone())).or_default() += 1;
        }
    }
    for key in &acks.events {
        assert_eq!(stored.get(key), Some(&1), "acknowledged event {key:?}");
    }
    assert!(stored.values().all(|n| *n == 1), "a key stored twice");

    // Every summary received has its view in ems's log and its access in the provider's.
    let views: BTreeSet<i64> = store
        .view_records("kawasaki-fd", 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.entry.provider_access_id)
        .collect();
    for id in &acks.access_ids {
        assert!(
            views.contains(id),
            "the view of provider access {id} is missing"
        );
    }
    assert!(matches!(
        store.verify_view_log().await.unwrap(),
        ChainReport::Intact { .. }
    ));
    drop(store);
    let provider_store = SqliteStore::open(&data.join("provider.db")).unwrap();
    for id in &acks.access_ids {
        assert!(
            // SQLite's log is one chain: an access id is its place in it.
            provider_store
                .access_log_hash(myna_store::ChainPosition {
                    partition: 0,
                    seq: *id
                })
                .await
                .unwrap()
                .is_some(),
            "provider access {id} is missing"
        );
    }
    assert!(matches!(
        provider_store.verify_access_log().await.unwrap(),
        ChainReport::Intact { .. }
    ));
    provider_store.close().unwrap();

    // As an operator checks them.
    for (chain, db) in [("provider", "provider.db"), ("ems", "ems.db")] {
        let o = bin()
            .args(["audit", "verify", "--chain", chain, "--db"])
            .arg(data.join(db))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{chain}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    println!(
        "{} events and {} summaries acknowledged across kills {kills:?}",
        acks.events.len(),
        acks.access_ids.len()
    );
}
