#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Two `ems serve` processes on one PostgreSQL database, as a bureau scales ems out: the
//! dispatcher's desk on one, a crew's tablet on the other. The incident the desk dispatches
//! reaches the tablet's push stream; when the processes' change feeds are cut, the tablet is
//! told to resync; and a revocation made elsewhere (`ems terminal revoke`, a third process)
//! ends that stream at once, not at its credential re-check.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use myna_terminal::ems_client::{EmsClient, SseParser};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_myna-kyukyu"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ems serve` on a free loopback port; its URL.
fn ems_serve(db: &str, extra: &[&str]) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_myna-kyukyu"))
        .args(["ems", "serve", "--db", db, "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = Server(child);
    let url = line.trim().strip_prefix("ems: ").unwrap().to_owned();
    (server, url)
}

fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn seed(dir: &Path, db: &str) -> HashMap<String, String> {
    let credential = dir.join("provider.token");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&credential)
            .unwrap();
        f.write_all(b"kawasaki-fd.secret").unwrap();
    }
    let out = ok(&run(&[
        "ems",
        "seed-kawasaki",
        "--db",
        db,
        "--provider-url",
        "http://127.0.0.1:9",
        "--provider-token-file",
        credential.to_str().unwrap(),
    ]));
    // "  login   password" lines after the heading.
    out.lines()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect()
}

/// Events of a push stream as they arrive: (event, data).
fn follow(body: hyper::body::Incoming) -> tokio::sync::mpsc::UnboundedReceiver<(String, String)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut body = body;
        let mut parser = SseParser::default();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            for ev in parser.push(&data) {
                if tx.send(ev).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(("closed".into(), String::new()));
    });
    rx
}

/// The next event other than a keep-alive comment, within `wait`.
async fn next_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    wait: Duration,
) -> Option<(String, String)> {
    tokio::time::timeout(wait, rx.recv()).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_on_one_ems_process_reaches_a_tablet_on_another_and_a_revocation_ends_it() {
    let db = myna_store_postgres::testing::TestDb::create("two_ems")
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let passwords = seed(tmp.path(), &db.url);
    let token_file = tmp.path().join("tablet.token");
    let out = ok(&run(&[
        "ems",
        "terminal",
        "add",
        "--db",
        &db.url,
        "--team",
        "川崎救急1",
        "--token-file",
        token_file.to_str().unwrap(),
    ]));
    // "terminal 123 (川崎救急1 タブレット) registered; …"
    let terminal: i64 = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();

    // The streams' own re-check is an hour away: only the other processes' note can end them.
    let (desk_side, desk_url) = ems_serve(&db.url, &["--stream-recheck-s", "3600"]);
    let (tablet_side, tablet_url) = ems_serve(&db.url, &["--stream-recheck-s", "3600"]);
    assert_ne!(desk_url, tablet_url);
    // Both feeds listening before anything happens (a note sent earlier is not heard).
    tokio::time::timeout(Duration::from_secs(30), async {
        while db.listeners().await.unwrap() < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the two ems processes did not both listen within 30 s");

    // The tablet signs its crew in on the second process and opens its push stream there.
    let tls = myna_tls::platform_client_config().unwrap();
    let tablet = EmsClient::new_from(&tablet_url, &token, tls, None).unwrap();
    let crew = tablet
        .sign_in("crew01", &passwords["crew01"])
        .await
        .unwrap();
    assert_eq!(crew.terminal.team_name, "川崎救急1");
    let mut pushes = follow(tablet.stream(&crew.session).await.unwrap());

    // The dispatcher signs in on the first process and dispatches to the tablet's team.
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let post = |path: &str, cookie: Option<&str>, body: String| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("{desk_url}{path}"))
            .header("origin", desk_url.as_str())
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header("cookie", format!("{}={c}", myna_ems::auth::SESSION_COOKIE));
        }
        http.request(req.body(Full::new(Bytes::from(body))).unwrap())
    };
    let signed_in = post(
        "/login",
        None,
        form(&[
            ("bureau", myna_ems::seed::KAWASAKI_CODE),
            ("login", "dispatcher"),
            ("password", &passwords["dispatcher"]),
        ]),
    )
    .await
    .unwrap();
    let cookie = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{}=", myna_ems::auth::SESSION_COOKIE))
                .and_then(|rest| rest.split(';').next())
                .map(str::to_owned)
        })
        .expect("the dispatcher was not signed in");
    let category = serde_json::to_value(myna_domain::incident::ComplaintCategory::ChestPain)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let created = post(
        "/dispatch/incidents",
        Some(&cookie),
        form(&[
            ("location", "川崎市川崎区宮本町1"),
            ("category", &category),
            ("note", "二つのプロセス"),
            ("team", &crew.terminal.team_id.to_string()),
            ("csrf", &myna_web::csrf::token(&cookie)),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::SEE_OTHER);

    // The push crosses processes; the tablet then reads the incident from its own process.
    // (A resync may come first: the feed tells each new stream's process it listens.)
    let (event, data) = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match pushes.recv().await {
                Some((event, _)) if event == "resync" => {}
                other => return other,
            }
        }
    })
    .await
    .ok()
    .flatten()
    .expect("no push reached the tablet's process in 30 s");
    assert_eq!(event, "incident", "{data}");
    let incident: i64 = data.parse().unwrap();
    let shown = tablet.incident(&crew.session, incident).await.unwrap();
    assert_eq!(shown.location, "川崎市川崎区宮本町1");

    // The feeds' connections cut, as by a network failure: each process listens again, and
    // since notes sent meanwhile are lost, the tablet is told to resync everything.
    assert_eq!(db.cut_listeners().await.unwrap(), 2, "one feed per process");
    let resync = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match pushes.recv().await {
                Some((event, data)) if event == "incident" && data == incident.to_string() => {}
                other => return other,
            }
        }
    })
    .await
    .expect("no resync 30 s after the feed was cut");
    assert_eq!(resync.map(|(event, _)| event).as_deref(), Some("resync"));

    // A forged note (anyone who can NOTIFY on the database can send one) revoking this
    // terminal: the stream checks the store, finds the terminal valid, and stays open. (A
    // wrongly ended stream would say so within milliseconds; two seconds are waited.)
    let bureau = myna_store_postgres::PgEmsStore::connect(&db.url)
        .await
        .unwrap();
    let bureau_id = {
        use myna_store::ems::EmsStore;
        let b = bureau
            .bureau(myna_ems::seed::KAWASAKI_CODE)
            .await
            .unwrap()
            .unwrap()
            .id;
        bureau
            .publish_change(myna_store::ems::ChangeNote {
                origin: 1,
                bureau: b,
                what: myna_store::ems::Changed::TerminalRevoked(terminal),
            })
            .await;
        b
    };
    assert!(bureau_id != 0);
    match next_event(&mut pushes, Duration::from_secs(2)).await {
        None => {}
        Some((event, data)) => assert!(
            event == "incident" && data == incident.to_string(),
            "a forged revocation note reached the tablet as {event}: {data}"
        ),
    }
    assert!(tablet.incident(&crew.session, incident).await.is_ok());

    // Revoked by a third process: the stream on the second ends now, not in an hour (the
    // feed it rides on is the one just re-established).
    ok(&run(&[
        "ems",
        "terminal",
        "revoke",
        "--db",
        &db.url,
        "--id",
        &terminal.to_string(),
    ]));
    let ended = next_event(&mut pushes, Duration::from_secs(30))
        .await
        .expect("the revoked tablet's stream was still open 30 s later");
    assert_eq!(ended.0, "signed_out");
    // And the credential is refused from now on, by either process.
    assert!(tablet.stream(&crew.session).await.is_err());
    let other = EmsClient::new_from(
        &desk_url,
        &token,
        myna_tls::platform_client_config().unwrap(),
        None,
    )
    .unwrap();
    assert!(other.sign_in("crew01", &passwords["crew01"]).await.is_err());
    drop((desk_side, tablet_side));
    db.drop_now().await.unwrap();
}
