#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A network partition between the ambulance and the bureau, on real processes and a real
//! link. `ems` and the provider run in a network namespace of their own (the bureau's
//! network), joined to the host by a veth pair; the tablet (`terminal`, with its certificate)
//! runs on the host. While the crew works a scripted incident, the test cuts the link twice:
//! the interface goes down (connections fail at once), then iptables in the namespace drops
//! the tablet's packets (requests hang until their deadline). It checks what the crew sees
//! (通信途絶 and the number of taps waiting) and that, once the link is back, ems holds every tap
//! exactly once, in order, and one view for the consent sent offline.
//!
//! Needs root, `ip` (iproute2) and `iptables`; `scripts/test` installs them. The test makes and
//! removes its namespace and veth pair itself.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use myna_domain::incident::{EventKind, Phase};
use myna_store::ems::EmsStore;
use myna_store_sqlite::EmsSqlite;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOST_ADDR: &str = "10.79.0.1";
const EMS_ADDR: &str = "10.79.0.2";
const EMS_PORT: u16 = 8441;
const PROVIDER_PORT: u16 = 18440;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_myna-kyukyu"))
}

fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} {args:?}: {e} (this test needs root, iproute2 and iptables)")
        });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The bureau's namespace and the veth pair to it; removed (with whatever runs in it) on drop.
struct Bureau {
    ns: String,
    host_if: String,
}

impl Bureau {
    fn new() -> Self {
        let id = std::process::id() % 100_000;
        let b = Bureau {
            ns: format!("mkp{id}"),
            host_if: format!("mkp{id}h"),
        };
        let ns_if = format!("mkp{id}n");
        b.teardown();
        sh("ip", &["netns", "add", &b.ns]);
        sh(
            "ip",
            &[
                "link", "add", &b.host_if, "type", "veth", "peer", "name", &ns_if,
            ],
        );
        sh("ip", &["link", "set", &ns_if, "netns", &b.ns]);
        sh(
            "ip",
            &["addr", "add", &format!("{HOST_ADDR}/24"), "dev", &b.host_if],
        );
        sh("ip", &["link", "set", &b.host_if, "up"]);
        b.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{EMS_ADDR}/24"),
            "dev",
            &ns_if,
        ]);
        b.exec_ok(&["ip", "link", "set", &ns_if, "up"]);
        b.exec_ok(&["ip", "link", "set", "lo", "up"]);
        b
    }

    fn exec_ok(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", self.ns.as_str()];
        all.extend_from_slice(args);
        sh("ip", &all);
    }

    fn spawn(&self, args: &[&str], log: &Path) -> Proc {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(bin())
            .args(args)
            .stdout(Stdio::from(std::fs::File::create(log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(log.with_extension("err")).unwrap(),
            ))
            .spawn()
            .unwrap();
        Proc(child)
    }

    fn link(&self, up: bool) {
        sh(
            "ip",
            &["link", "set", &self.host_if, if up { "up" } else { "down" }],
        );
    }

    /// Drops (or stops dropping) every packet from the tablet's side inside the namespace.
    fn drop_tablet(&self, on: bool) {
        let rule = if on { "-I" } else { "-D" };
        self.exec_ok(&["iptables", rule, "INPUT", "-s", HOST_ADDR, "-j", "DROP"]);
    }

    fn teardown(&self) {
        let pids = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Bureau {
    fn drop(&mut self) {
        self.teardown();
    }
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A small HTTP(S) client that keeps one cookie per origin, as a browser would.
struct Browser {
    http: Client<myna_tls::Connector, Full<Bytes>>,
    origin: String,
    cookie: Option<String>,
}

struct Answer {
    status: u16,
    body: String,
}

impl Browser {
    fn new(origin: &str, ca: &Path) -> Self {
        let tls = myna_tls::client_config(&myna_tls::Roots::File(ca.to_owned()), None).unwrap();
        Browser {
            http: Client::builder(TokioExecutor::new())
                .build(myna_tls::https_connector(tls, Some(Duration::from_secs(3)))),
            origin: origin.to_owned(),
            cookie: None,
        }
    }

    async fn send(&mut self, method: &str, path: &str, form: Option<&str>) -> Answer {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.origin));
        if method == "POST" {
            req = req
                .header("origin", &self.origin)
                .header("content-type", "application/x-www-form-urlencoded");
        }
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let req = req
            .body(Full::new(Bytes::from(form.unwrap_or_default().to_owned())))
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(20), self.http.request(req))
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no answer"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        if let Some(set) = resp.headers().get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = Some(pair);
        }
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn post(&mut self, path: &str, form: &str) -> Answer {
        let a = self.send("POST", path, Some(form)).await;
        assert!(a.status < 400, "POST {path}: {} {}", a.status, a.body);
        a
    }
}

/// What the tablet's screen says about the link and the taps waiting.
#[derive(Debug, PartialEq, Eq)]
struct Status {
    link: String,
    pending: usize,
}

fn status_of(screen: &str) -> Status {
    let attr = |name: &str| {
        screen
            .split(&format!("{name}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(str::to_owned)
    };
    Status {
        link: attr("data-link").unwrap_or_default(),
        pending: attr("data-pending").map_or(0, |p| p.parse().unwrap()),
    }
}

/// Polls the tablet's screen until `ok` holds.
async fn wait_screen(tablet: &mut Browser, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let screen = tablet.send("GET", "/screen", None).await.body;
        if ok(&screen) {
            return screen;
        }
        assert!(
            Instant::now() < deadline,
            "waited 90 s for {what}; the screen: {:?}",
            status_of(&screen)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    text.split(start).nth(1)?.split(end).next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_delivers_every_tap_once_across_cuts_and_the_crew_sees_the_link_honestly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();
    // The demo's data: a population, cards, 川崎市消防局, the CAs, the tablets' certificates.
    let ports: Vec<String> = (0..4)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    run(&[
        "demo",
        "--data-dir",
        data_s,
        "--persons",
        "300",
        "--exit-after-samples",
        "--listen",
        &ports[0],
        "--ems-listen",
        &ports[1],
        "--terminal-listen",
        &ports[2],
        "--portal-listen",
        &ports[3],
    ]);
    let tls = data.join("tls");
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    run(&[
        "tls",
        "server-cert",
        "--dir",
        &path(&tls),
        "--name",
        "ems-partition",
        "--host",
        EMS_ADDR,
    ]);
    let provider_url = format!("https://127.0.0.1:{PROVIDER_PORT}");
    run(&[
        "ems",
        "set-provider",
        "--db",
        &path(&data.join("ems.db")),
        "--provider-url",
        &provider_url,
        "--provider-token-file",
        &path(&tls.join("kawasaki-fd.identity.pem")),
    ]);
    let (bureau_id, team_id) = {
        let store = EmsSqlite::open(&data.join("ems.db")).unwrap();
        let b = store.bureau("kawasaki-fd").await.unwrap().unwrap();
        let team = store
            .teams(b.id)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.name == "中原救急1")
            .unwrap();
        (b.id, team.id)
    };

    let bureau = Bureau::new();
    let logs = tmp.path();
    let _provider = bureau.spawn(
        &[
            "provider",
            "serve",
            "--db",
            &path(&data.join("provider.db")),
            "--ca-cert",
            &path(&data.join("pki/ca.cert.der")),
            "--listen",
            &format!("127.0.0.1:{PROVIDER_PORT}"),
            "--tls-cert",
            &path(&tls.join("provider.pem")),
            "--tls-key",
            &path(&tls.join("provider.key")),
            "--client-ca",
            &path(&tls.join("org-ca.pem")),
        ],
        &logs.join("provider.log"),
    );
    let ems_addr = format!("{EMS_ADDR}:{EMS_PORT}");
    let ems = bureau.spawn(
        &[
            "ems",
            "serve",
            "--db",
            &path(&data.join("ems.db")),
            "--listen",
            &ems_addr,
            "--public-host",
            &ems_addr,
            "--tls-cert",
            &path(&tls.join("ems-partition.pem")),
            "--tls-key",
            &path(&tls.join("ems-partition.key")),
            "--device-ca-cert",
            &path(&tls.join("device-ca.pem")),
            "--device-ca-key",
            &path(&tls.join("device-ca.key")),
            "--provider-ca",
            &path(&tls.join("ca.pem")),
        ],
        &logs.join("ems.log"),
    );
    let ems_url = format!("https://{ems_addr}");
    let mut desk = Browser::new(&ems_url, &tls.join("ca.pem"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = tokio::time::timeout(Duration::from_secs(2), desk.http.get_ok(&ems_url)).await;
        if matches!(up, Ok(true)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ems did not come up in the namespace"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The tablet on the host, with its certificate.
    let terminal_port = free_port();
    let launch_file = tmp.path().join("launch");
    let _terminal = Proc(
        Command::new(bin())
            .args(["terminal", "--ems", &ems_url, "--ems-ca"])
            .arg(tls.join("ca.pem"))
            .arg("--cert")
            .arg(data.join("terminals/nakahara1.pem"))
            .arg("--key")
            .arg(data.join("terminals/nakahara1.key"))
            .args(["--listen", &format!("127.0.0.1:{terminal_port}")])
            .arg("--outbox")
            .arg(tmp.path().join("outbox.db"))
            .arg("--demo-deck")
            .arg(data.join("cards"))
            .args(["--latency-ms", "5", "--launch-file"])
            .arg(&launch_file)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(logs.join("terminal.err")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let launch = loop {
        if let Ok(url) = std::fs::read_to_string(&launch_file) {
            break url.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "the terminal did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let origin = format!("http://127.0.0.1:{terminal_port}");
    let mut tablet = Browser::new(&origin, &tls.join("ca.pem"));
    let launch_path = launch.strip_prefix(&origin).unwrap().to_owned();
    assert_eq!(tablet.send("GET", &launch_path, None).await.status, 303);
    tablet
        .post("/sign-in", "login=crew10&password=crew-2026-demo")
        .await;

    // The dispatcher makes the incident and dispatches 中原救急1; the push brings it.
    let login = desk
        .send(
            "POST",
            "/login",
            Some("bureau=kawasaki-fd&login=dispatcher&password=dispatch-119"),
        )
        .await;
    assert_eq!(login.status, 303, "{}", login.body);
    let session = desk
        .cookie
        .as_deref()
        .and_then(|c| c.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap();
    let csrf = myna_web::csrf::token(&session);
    desk.post(
        "/dispatch/incidents",
        &format!(
            "location=%E4%B8%AD%E5%8E%9F%E5%8C%BA&category=chest_pain&team={team_id}&csrf={csrf}"
        ),
    )
    .await;
    let screen = wait_screen(&mut tablet, "the pushed incident", |s| {
        s.contains("data-incident=\"")
    })
    .await;
    let incident: i64 = between(&screen, "data-incident=\"", "\"")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no incident on the tablet: {screen}"));
    let open = format!("/incidents/{incident}/open");
    tablet.post(&open, "").await;

    // Link up: 現着 is delivered.
    tablet
        .post(&format!("/incidents/{incident}/phase/arrival"), "")
        .await;
    wait_screen(&mut tablet, "現着 delivered", |s| {
        status_of(s)
            == Status {
                link: "online".into(),
                pending: 0,
            }
    })
    .await;

    // Cut 1: the interface goes down. 接触, the card, 顔写真と一致, 同意 (with its view).
    bureau.link(false);
    tablet
        .post(&format!("/incidents/{incident}/phase/contact"), "")
        .await;
    tablet.post("/demo/place/doac", "").await;
    let screen = wait_screen(&mut tablet, "the card's face check", |s| {
        s.contains("id=\"face-ok\"")
    })
    .await;
    let card = between(&screen, "\"card\":\"", "\"").unwrap().to_owned();
    tablet
        .post(
            &format!("/incidents/{incident}/face"),
            &format!("card={card}"),
        )
        .await;
    wait_screen(&mut tablet, "the consent button", |s| {
        s.contains("id=\"consent-ok\"")
    })
    .await;
    tablet
        .post(
            &format!("/incidents/{incident}/consent"),
            &format!("card={card}&consent=obtained"),
        )
        .await;
    let offline = wait_screen(&mut tablet, "通信途絶 with 3 taps waiting", |s| {
        status_of(s)
            == Status {
                link: "offline".into(),
                pending: 3,
            }
    })
    .await;
    assert!(
        offline.contains("通信途絶"),
        "the crew is told the link is down"
    );
    assert!(offline.contains("送信待ち 3 件"));

    bureau.link(true);
    wait_screen(&mut tablet, "everything delivered after cut 1", |s| {
        status_of(s)
            == Status {
                link: "online".into(),
                pending: 0,
            }
    })
    .await;

    // Cut 2: the link stays up but the bureau drops the tablet's packets (requests hang).
    bureau.drop_tablet(true);
    tablet
        .post(&format!("/incidents/{incident}/phase/in_vehicle"), "")
        .await;
    tablet
        .post(&format!("/incidents/{incident}/phase/departure"), "")
        .await;
    wait_screen(&mut tablet, "通信途絶 with 2 taps waiting", |s| {
        status_of(s)
            == Status {
                link: "offline".into(),
                pending: 2,
            }
    })
    .await;
    bureau.drop_tablet(false);
    wait_screen(&mut tablet, "everything delivered after cut 2", |s| {
        status_of(s)
            == Status {
                link: "online".into(),
                pending: 0,
            }
    })
    .await;

    // ems holds every tap once, in the order tapped, and one view for the consent.
    drop(ems);
    drop(bureau);
    let store = EmsSqlite::open(&data.join("ems.db")).unwrap();
    let record = store.incident(bureau_id, incident).await.unwrap().unwrap();
    let crew_kinds: Vec<String> = record
        .log
        .events
        .iter()
        .filter(|e| matches!(e.actor, myna_domain::incident::Actor::Crew { .. }))
        .map(|e| match &e.kind {
            EventKind::Phase { phase } => phase.as_str().to_owned(),
            EventKind::IdentityConfirmed { .. } => "identity_confirmed".into(),
            EventKind::Consent { .. } => "consent".into(),
            // Recorded by ems with the view the consent asked for, in the crew's name.
            EventKind::SummaryViewed { .. } => "summary_viewed".into(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        crew_kinds,
        [
            Phase::Arrival.as_str(),
            Phase::Contact.as_str(),
            "identity_confirmed",
            "consent",
            "summary_viewed",
            Phase::InVehicle.as_str(),
            Phase::Departure.as_str(),
        ],
        "every tap once, in order, and one view"
    );
    let mut keys: Vec<&str> = record
        .log
        .events
        .iter()
        .map(|e| e.idempotency_key.as_str())
        .collect();
    let n = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), n, "no idempotency key twice");
    let views = store.view_records("kawasaki-fd", 100).await.unwrap();
    let views: Vec<_> = views
        .iter()
        .filter(|v| v.entry.incident_number == record.number && v.entry.hospital.is_none())
        .collect();
    assert_eq!(views.len(), 1, "one view for the consent sent offline");
}

trait GetOk {
    async fn get_ok(&self, base: &str) -> bool;
}

impl GetOk for Client<myna_tls::Connector, Full<Bytes>> {
    async fn get_ok(&self, base: &str) -> bool {
        let Ok(uri) = format!("{base}/healthz").parse::<hyper::Uri>() else {
            return false;
        };
        self.get(uri).await.is_ok_and(|r| r.status().is_success())
    }
}
