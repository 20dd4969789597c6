//! `bench ems-load`: the real `ems` and `provider` processes under a fire bureau's busiest hour
//! (`kawasaki`) or a national ems with every team's tablet connected (`national`), over
//! loopback. Each simulated tablet has its own loopback address (Linux routes 127/8 to lo),
//! holds its push stream open, and sends what the tablet sends: phases, vitals, the face check,
//! the consent with the summary request, the hospital inquiry and destination, closing. The
//! dispatcher creates and assigns each incident through the desk's form. A benchmark: it prints
//! latencies, errors, push delivery and the services' memory, and never fails on a number.
//! With `--check` (how CI runs the Kawasaki hour) it also fails when a request failed (after
//! resending, as the tablet's outbox does), a push stream closed or missed a dispatch, ems's
//! events differ from those acknowledged, or its view log does not hold one view per answered
//! summary with its chain intact. The rates and their sources are in
//! `docs/benchmarks.md`.

use crate::cards::{CA_CERT, PkiDir};
use crate::quantile::nearest_rank;
use anyhow::{Context, Result, bail};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use myna_domain::access::Consent;
use myna_domain::incident::{ComplaintCategory, InquiryResult, Phase};
use myna_domain::vitals::Vitals;
use myna_store::ems::{AccountSeed, BureauSeed, EmsStore, Role};
use myna_store_sqlite::{EmsSqlite, SqliteStore};
use myna_terminal::ems_client::{CallError, EmsClient, SseParser};
use myna_wire::terminal::{ConsentTap, CrewEvent, EventBody, SummaryBody};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// 川崎市消防局's 31 teams in Kawasaki's busiest hour.
    Kawasaki,
    /// Every team of the country (5,334) on one ems, at the national busiest hour.
    National,
}

#[derive(clap::Args)]
pub struct EmsLoadArgs {
    #[arg(long, value_enum, default_value = "kawasaki")]
    pub scenario: Scenario,
    /// Dispatches per hour in the busiest hour (default: kawasaki 22, national 1,830).
    #[arg(long)]
    pub per_hour: Option<f64>,
    /// Arrivals come this many times faster than `per_hour` (default: kawasaki 60, so the
    /// hour's dispatches arrive in 60 s; national 1, the real rate).
    #[arg(long)]
    pub rate_factor: Option<f64>,
    /// Seconds during which dispatches arrive (default: kawasaki 60, national 300).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Each incident's 85-minute timeline is played this many times faster (1 = real time).
    #[arg(long, default_value_t = 60.0)]
    pub timeline_factor: f64,
    /// Share of dispatches that attempt マイナ救急 (face check, consent and summary request)
    /// (default: kawasaki 1.0, national 0.27).
    #[arg(long)]
    pub myna_share: Option<f64>,
    /// Teams, each with one tablet (national; kawasaki has its 31).
    #[arg(long, default_value_t = 5334)]
    pub terminals: usize,
    /// Fire bureaus (national): 720 headquarters share the teams.
    #[arg(long, default_value_t = 720)]
    pub bureaus: usize,
    /// Synthetic persons in the provider's database.
    #[arg(long, default_value_t = 2000)]
    pub persons: u64,
    /// Distinct cards the patients present.
    #[arg(long, default_value_t = 300)]
    pub cards: u64,
    /// Seconds every push stream is held open after the last incident closed.
    #[arg(long, default_value_t = 12)]
    pub hold_s: u64,
    /// Work directory; emptied at the start of each run.
    #[arg(long, default_value = "bench-data/ems-load")]
    pub data_dir: PathBuf,
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Fail (exit 1) unless the run lost nothing: no failed request, every stream open to the
    /// end with every dispatch pushed, and ems holding each acknowledged crew event exactly
    /// once with its view log intact. Never judges a latency.
    #[arg(long)]
    pub check: bool,
}

const PASSWORD: &str = "bench-load-2026";

/// One step of an incident, at minutes after the 119 call (sources in docs/benchmarks.md).
#[derive(Clone, Copy)]
enum Step {
    Phase(Phase),
    Vitals,
    FaceCheck,
    Summary,
    Inquiry,
    Destination,
    Closed,
}

const TIMELINE: [(f64, Step, bool); 12] = [
    // (minute, step, only when マイナ救急 is attempted)
    (10.3, Step::Phase(Phase::Arrival), false),
    (11.4, Step::Phase(Phase::Contact), false),
    (12.5, Step::Vitals, false),
    (13.5, Step::FaceCheck, true),
    (14.0, Step::Summary, true),
    (17.2, Step::Phase(Phase::InVehicle), false),
    (20.0, Step::Inquiry, false),
    (21.0, Step::Destination, false),
    (30.8, Step::Phase(Phase::Departure), false),
    (42.0, Step::Phase(Phase::HospitalArrival), false),
    (60.0, Step::Vitals, false),
    (85.0, Step::Closed, false),
];

/// A child process that is killed when the benchmark ends, however it ends.
struct ChildGuard(Child);
impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A small deterministic generator (splitmix64): the schedule is the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Latencies (µs) and errors by request kind.
#[derive(Default)]
struct Record {
    latencies: Mutex<BTreeMap<&'static str, Vec<u64>>>,
    errors: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// The idempotency keys of crew events and consent taps that ems acknowledged.
    acknowledged: Mutex<Vec<String>>,
    /// Summaries ems answered (each records one view).
    summaries: AtomicU64,
    /// Requests sent again after a connection failure or timeout, as the tablet's outbox does.
    resent: AtomicU64,
}

/// How often a tablet request is sent again after a connection failure or timeout (with the
/// same idempotency key) before it counts as failed.
const SEND_ATTEMPTS: u32 = 5;

impl Record {
    fn ok(&self, kind: &'static str, since: Instant) {
        if let Ok(mut m) = self.latencies.lock() {
            m.entry(kind)
                .or_default()
                .push(since.elapsed().as_micros() as u64);
        }
    }
    fn err(&self, kind: &'static str, what: String) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry((kind, what)).or_default() += 1;
        }
    }
    fn acknowledge(&self, key: String) {
        if let Ok(mut acked) = self.acknowledged.lock() {
            acked.push(key);
        }
    }
    fn call_err(&self, kind: &'static str, e: &CallError) {
        let what = match e {
            CallError::Offline(s) => {
                format!("connection: {}", s.chars().take(60).collect::<String>())
            }
            CallError::Refused { status, code, .. } => format!("HTTP {status} {code}"),
        };
        self.err(kind, what);
    }
}

/// What one tablet's push stream saw.
#[derive(Default)]
struct StreamStats {
    opened: AtomicBool,
    open_failed: AtomicBool,
    /// Ended before the benchmark closed it.
    ended_early: AtomicBool,
    pushes: AtomicU64,
    resyncs: AtomicU64,
    signed_out: AtomicU64,
    /// Incidents dispatched to this team, and those whose push arrived.
    dispatched: AtomicU64,
    dispatch_pushed: AtomicU64,
}

struct Tablet {
    team: i64,
    client: EmsClient,
    session: String,
    /// New incident ids from the push stream, with when they arrived.
    new_incidents: tokio::sync::Mutex<mpsc::UnboundedReceiver<(i64, Instant)>>,
    /// Events leave the tablet in order (the outbox's rule), one at a time.
    outbox: tokio::sync::Mutex<()>,
    stats: StreamStats,
}

/// A dispatcher's desk session.
struct Desk {
    http: Client<HttpConnector, Full<Bytes>>,
    cookie: String,
    csrf: String,
}

struct Setup {
    tablets: Vec<Arc<Tablet>>,
    /// Per tablet: its stream's sender of new incident ids.
    senders: Vec<mpsc::UnboundedSender<(i64, Instant)>>,
    /// Per tablet: its bureau's desk.
    desk_of: Vec<usize>,
    desks: Vec<Desk>,
}

/// Tablet `i`'s own loopback address (127.1.x.y), dispatcher `b`'s (127.2.x.y).
fn loopback(net: u8, i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        net,
        (i / 250) as u8,
        (i % 250 + 1) as u8,
    ))
}

fn desk_client(local: IpAddr) -> Client<HttpConnector, Full<Bytes>> {
    let mut c = HttpConnector::new();
    c.set_local_address(Some(local));
    c.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(c)
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Peak (VmHWM) and current (VmRSS) resident memory of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn spawn_service(args: &[&str], log: &Path, prefix: &str) -> Result<(ChildGuard, String)> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("starting {}", args.join(" ")))?;
    let stdout = child.stdout.take().context("service stdout")?;
    let guard = ChildGuard(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(url) = line.trim().strip_prefix(prefix) else {
        bail!(
            "{} did not start: {line:?} (see {})",
            args[0],
            log.display()
        );
    };
    Ok((guard, url.to_owned()))
}

pub async fn run(args: EmsLoadArgs) -> Result<ExitCode> {
    let national = args.scenario == Scenario::National;
    let per_hour = args
        .per_hour
        .unwrap_or(if national { 1830.0 } else { 22.0 });
    let rate_factor = args
        .rate_factor
        .unwrap_or(if national { 1.0 } else { 60.0 });
    let seconds = args.seconds.unwrap_or(if national { 300.0 } else { 60.0 });
    let share = args.myna_share.unwrap_or(if national { 0.27 } else { 1.0 });
    let timeline = args.timeline_factor.max(1e-3);
    let dispatches = (per_hour * rate_factor * seconds / 3600.0).round() as usize;
    // Each tablet holds a stream and a request connection; raise our own descriptor limit.
    let fds = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);

    let dir = &args.data_dir;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("tokens"))?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let teams_n = if national { args.terminals } else { 31 };
    let bureaus_n = if national {
        args.bureaus.clamp(1, teams_n.max(1))
    } else {
        1
    };
    println!(
        "bench ems-load {}: {cpus} CPUs, descriptor limit {fds}; {teams_n} tablets in {bureaus_n} bureau(s)",
        if national { "national" } else { "kawasaki" }
    );
    println!(
        "{dispatches} dispatches arriving over {seconds:.0} s ({per_hour:.0}/h × {rate_factor}); \
         incident timeline (85 min) played {timeline}× faster; マイナ救急 share {share}"
    );

    // The provider: persons, cards, one organisation per bureau.
    let t = Instant::now();
    let db = dir.join("provider.db");
    let today = myna_provider::japan_date(chrono::Utc::now());
    crate::generate::generate(&db, args.persons, args.seed, today, true).await?;
    let pki = PkiDir::create(&dir.join("pki"), 4)?;
    let now = chrono::Utc::now();
    let cards_n = args.cards.clamp(1, args.persons.max(1));
    let stride = (args.persons / cards_n).max(1);
    let mut certificates = Vec::new();
    for c in 0..cards_n {
        let serial = myna_synth::cert_serial_for(args.seed, (c * stride) % args.persons.max(1));
        let der = pki.ca.issue_auth_cert(
            &serial,
            &pki.keys.key(c as usize).to_public_key(),
            now - chrono::Duration::days(30),
            now + chrono::Duration::days(365),
        )?;
        certificates.push(base64::engine::general_purpose::STANDARD.encode(der));
    }
    let codes: Vec<String> = if national {
        (0..bureaus_n).map(|b| format!("hq{b:03}")).collect()
    } else {
        vec![myna_ems::seed::KAWASAKI_CODE.to_owned()]
    };
    let store = SqliteStore::open(&db)?;
    let mut credential_files = Vec::new();
    for code in &codes {
        let token = crate::provider::add_organisation(&store, code, code).await?;
        let path = dir.join("tokens").join(format!("{code}.token"));
        crate::provider::write_token(&path, &token)?;
        credential_files.push(crate::ems_cli::credential_file_name(&path)?);
    }
    store.close()?;
    let ca = dir.join("pki").join(CA_CERT);
    let path_str = |p: &Path| p.to_str().map(str::to_owned).context("non-UTF-8 path");
    let (provider, provider_url) = spawn_service(
        &[
            "provider",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            &path_str(&db)?,
            "--ca-cert",
            &path_str(&ca)?,
        ],
        &dir.join("provider.log"),
        "provider listening on ",
    )?;

    // ems: the bureaus, their teams, accounts, terminals.
    let ems_db = dir.join("ems.db");
    let hash = crate::ems_cli::hash_password(PASSWORD)?;
    let ems_store = EmsSqlite::open(&ems_db)?;
    let mut bureau_teams: Vec<(myna_store::ems::BureauId, Vec<myna_store::ems::Team>)> = Vec::new();
    if national {
        for (b, code) in codes.iter().enumerate() {
            // Teams dealt round-robin: 5,334 over 720 gives 7 or 8 each.
            let teams: Vec<String> = (b..teams_n)
                .step_by(bureaus_n)
                .enumerate()
                .map(|(j, _)| format!("救急{}", j + 1))
                .collect();
            let mut accounts = vec![AccountSeed {
                login: "dispatcher".into(),
                display_name: "指令員".into(),
                role: Role::Dispatcher,
                team: None,
                hospital: None,
                password_hash: hash.clone(),
            }];
            for (j, team) in teams.iter().enumerate() {
                accounts.push(AccountSeed {
                    login: myna_ems::seed::crew_login(j + 1),
                    display_name: format!("{team} 隊長"),
                    role: Role::Crew,
                    team: Some(team.clone()),
                    hospital: None,
                    password_hash: hash.clone(),
                });
            }
            let id = ems_store
                .seed_bureau(BureauSeed {
                    code: code.clone(),
                    name: format!("消防本部{b}"),
                    provider_url: provider_url.clone(),
                    provider_credential_file: credential_files[b].clone(),
                    view_window_s: myna_domain::incident::DEFAULT_VIEW_WINDOW.num_seconds(),
                    patient_secret: myna_domain::patient::PatientSecret::from_bytes(
                        myna_web::random_secret(),
                    ),
                    stations: vec![(format!("本部{b}消防署"), teams)],
                    accounts,
                })
                .await?;
            bureau_teams.push((id, ems_store.teams(id).await?));
        }
    } else {
        let seed =
            myna_ems::seed::kawasaki(&provider_url, &credential_files[0], |_, _| hash.clone());
        let id = ems_store.seed_bureau(seed).await?;
        bureau_teams.push((id, ems_store.teams(id).await?));
    }
    // Tablets in team order; each knows its bureau (index into `bureau_teams`).
    let mut plan: Vec<(usize, i64, String, String)> = Vec::new(); // (bureau, team, name, login)
    for (b, (_, teams)) in bureau_teams.iter().enumerate() {
        for (j, t) in teams.iter().enumerate() {
            plan.push((b, t.id, t.name.clone(), myna_ems::seed::crew_login(j + 1)));
        }
    }
    let expires = (chrono::Utc::now() + chrono::Duration::hours(12)).timestamp_millis();
    let mut tokens = Vec::new();
    let mut sessions: Vec<Option<String>> = Vec::new();
    let mut desk_cookies: Vec<Option<String>> = vec![None; bureau_teams.len()];
    let t_register = Instant::now();
    if national {
        // Bulk path: registering 5,334 terminals one CLI process at a time, and signing in
        // 5,334 crews through argon2, would take longer than the run; the store API writes
        // the same rows (terminal, crew session, desk session) before ems starts.
        for (b, team, _, login) in &plan {
            let (bureau, _) = &bureau_teams[*b];
            let token = myna_web::random_token();
            let terminal = ems_store
                .add_terminal(*bureau, *team, "bench", myna_store::hash_secret(&token))
                .await?;
            let account = ems_store
                .account(*bureau, login)
                .await?
                .context("crew account missing")?;
            let session = myna_web::random_token();
            ems_store
                .create_session(
                    myna_store::hash_secret(&session),
                    account.id,
                    Some(terminal),
                    expires,
                )
                .await?;
            tokens.push(token);
            sessions.push(Some(session));
        }
        for (b, (bureau, _)) in bureau_teams.iter().enumerate() {
            let account = ems_store
                .account(*bureau, "dispatcher")
                .await?
                .context("dispatcher missing")?;
            let cookie = myna_web::random_token();
            ems_store
                .create_session(myna_store::hash_secret(&cookie), account.id, None, expires)
                .await?;
            desk_cookies[b] = Some(cookie);
        }
        drop(ems_store);
    } else {
        drop(ems_store);
        // As an operator registers them: `ems terminal add`, one per team.
        let exe = std::env::current_exe()?;
        for (i, (_, _, name, _)) in plan.iter().enumerate() {
            let file = dir.join("tokens").join(format!("terminal-{i}.token"));
            let o = Command::new(&exe)
                .args(["ems", "terminal", "add", "--team", name, "--db"])
                .arg(&ems_db)
                .arg("--token-file")
                .arg(&file)
                .output()?;
            if !o.status.success() {
                bail!("ems terminal add: {}", String::from_utf8_lossy(&o.stderr));
            }
            tokens.push(crate::provider::read_token(&file)?);
            sessions.push(None);
        }
    }
    println!(
        "setup: provider data and cards {:.1} s; {} terminals registered in {:.1} s ({})",
        (t_register - t).as_secs_f64(),
        plan.len(),
        t_register.elapsed().as_secs_f64(),
        if national {
            "store API"
        } else {
            "`ems terminal add`"
        }
    );

    let (ems, ems_url) = spawn_service(
        &[
            "ems",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            &path_str(&ems_db)?,
        ],
        &dir.join("ems.log"),
        "ems: ",
    )?;
    let pids = [("ems", ems.0.id()), ("provider", provider.0.id())];
    let idle_mem: Vec<(u64, u64)> = pids.iter().map(|(_, p)| memory_kib(*p)).collect();
    let peak_rss = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = {
        let peak_rss = peak_rss.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                for (i, (_, pid)) in pids.iter().enumerate() {
                    peak_rss[i].fetch_max(memory_kib(*pid).1, Ordering::Relaxed);
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stop.changed() => break,
                }
            }
        })
    };

    let record = Arc::new(Record::default());
    let tls = myna_tls::platform_client_config()?;
    // Sign in (kawasaki, through the API as the tablet does) and build the tablets.
    let mut setup = Setup {
        tablets: Vec::new(),
        senders: Vec::new(),
        desk_of: Vec::new(),
        desks: Vec::new(),
    };
    for (i, (b, team, _, login)) in plan.iter().enumerate() {
        let client = EmsClient::new_from(&ems_url, &tokens[i], tls.clone(), Some(loopback(1, i)))?;
        let session = match &sessions[i] {
            Some(s) => s.clone(),
            None => {
                let t0 = Instant::now();
                match client.sign_in(login, PASSWORD).await {
                    Ok(s) => {
                        record.ok("crew sign-in", t0);
                        s.session
                    }
                    Err(e) => {
                        record.call_err("crew sign-in", &e);
                        bail!("crew {login} could not sign in: {e}");
                    }
                }
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        setup.tablets.push(Arc::new(Tablet {
            team: *team,
            client,
            session,
            new_incidents: tokio::sync::Mutex::new(rx),
            outbox: tokio::sync::Mutex::new(()),
            stats: StreamStats::default(),
        }));
        setup.senders.push(tx);
        setup.desk_of.push(*b);
    }
    for (b, cookie) in desk_cookies.iter().enumerate() {
        let http = desk_client(loopback(2, b));
        let cookie = match cookie {
            Some(c) => c.clone(),
            None => desk_sign_in(&http, &ems_url, &codes[b], &record).await?,
        };
        setup.desks.push(Desk {
            http,
            csrf: myna_web::csrf::token(&cookie),
            cookie,
        });
    }

    // Every tablet's push stream, opened 64 at a time.
    let t_open = Instant::now();
    let opening = Arc::new(Semaphore::new(64));
    let mut streams = Vec::new();
    for (tablet, tx) in setup.tablets.iter().zip(setup.senders.drain(..)) {
        let (tablet, record, opening, stop) = (
            tablet.clone(),
            record.clone(),
            opening.clone(),
            stop_rx.clone(),
        );
        streams.push(tokio::spawn(follow_stream(
            tablet, tx, record, opening, stop,
        )));
    }
    // Wait until every stream answered (opened or failed), at most 120 s.
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline
        && setup.tablets.iter().any(|t| {
            !t.stats.opened.load(Ordering::Relaxed) && !t.stats.open_failed.load(Ordering::Relaxed)
        })
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open_s = t_open.elapsed().as_secs_f64();
    let opened = setup
        .tablets
        .iter()
        .filter(|t| t.stats.opened.load(Ordering::Relaxed))
        .count();
    println!(
        "push streams: {opened}/{} open after {open_s:.1} s",
        setup.tablets.len()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let streams_mem: Vec<(u64, u64)> = pids.iter().map(|(_, p)| memory_kib(*p)).collect();

    // The schedule: arrival times uniform over the window (a Poisson process given its
    // count), a team of the bureau chosen at random among those free, else the first to be.
    let mut rng = Rng(args.seed);
    let mut arrivals: Vec<f64> = (0..dispatches).map(|_| rng.unit() * seconds).collect();
    arrivals.sort_by(f64::total_cmp);
    let busy_s = 85.0 * 60.0 / timeline;
    let mut free_at = vec![0.0f64; setup.tablets.len()];
    let setup = Arc::new(setup);
    let certificates = Arc::new(certificates);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for (k, &at) in arrivals.iter().enumerate() {
        let tablet = if national {
            // 5,334 teams: a random one is almost always free.
            rng.below(free_at.len())
        } else {
            let free: Vec<usize> = (0..free_at.len()).filter(|&i| free_at[i] <= at).collect();
            if free.is_empty() {
                (0..free_at.len())
                    .min_by(|&a, &b| free_at[a].total_cmp(&free_at[b]))
                    .unwrap_or(0)
            } else {
                free[rng.below(free.len())]
            }
        };
        free_at[tablet] = free_at[tablet].max(at) + busy_s;
        let myna = rng.unit() < share;
        let card = certificates[k % certificates.len()].clone();
        let (setup, record, url) = (setup.clone(), record.clone(), ems_url.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start + Duration::from_secs_f64(at)).await;
            dispatch(&setup, tablet, k, myna, card, timeline, &url, &record).await;
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let load_s = start.elapsed().as_secs_f64();
    println!(
        "all incidents done after {load_s:.1} s; holding the streams {} s",
        args.hold_s
    );
    tokio::time::sleep(Duration::from_secs(args.hold_s)).await;
    let still_open = setup
        .tablets
        .iter()
        .filter(|t| {
            t.stats.opened.load(Ordering::Relaxed) && !t.stats.ended_early.load(Ordering::Relaxed)
        })
        .count();
    let _ = stop_tx.send(true);
    for s in streams {
        let _ = tokio::time::timeout(Duration::from_secs(10), s).await;
    }

    // Baseline: /healthz on the same ems, from one address, 1 and 16 at a time.
    let healthz1 = healthz(&ems_url, 1, Duration::from_secs(3)).await?;
    let healthz16 = healthz(&ems_url, 16, Duration::from_secs(3)).await?;
    let _ = sampler.await;
    let end_mem: Vec<(u64, u64)> = pids.iter().map(|(_, p)| memory_kib(*p)).collect();
    drop(ems);
    drop(provider);

    // The report.
    println!("\n| request | n | p50 ms | p90 ms | p99 ms | max ms | per s |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let lat = record
        .latencies
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    for (kind, mut v) in lat {
        v.sort_unstable();
        let ms = |p: f64| nearest_rank(&v, p) as f64 / 1000.0;
        let rate = if kind == "crew sign-in" || kind == "desk sign-in" || kind == "stream open" {
            String::from("–")
        } else {
            format!("{:.2}", v.len() as f64 / load_s.max(1e-9))
        };
        println!(
            "| {kind} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {rate} |",
            v.len(),
            ms(0.5),
            ms(0.9),
            ms(0.99),
            v.last().copied().unwrap_or(0) as f64 / 1000.0,
        );
    }
    println!(
        "| /healthz, 1 at a time (baseline) | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
        healthz1.n, healthz1.p50, healthz1.p90, healthz1.p99, healthz1.max, healthz1.per_s
    );
    println!(
        "| /healthz, 16 at a time (baseline) | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
        healthz16.n, healthz16.p50, healthz16.p90, healthz16.p99, healthz16.max, healthz16.per_s
    );
    let errors = record.errors.lock().map(|m| m.clone()).unwrap_or_default();
    println!("\nerrors: {}", if errors.is_empty() { "none" } else { "" });
    for ((kind, what), n) in &errors {
        println!("- {kind}: {what}: {n}");
    }
    let sum =
        |f: fn(&StreamStats) -> u64| -> u64 { setup.tablets.iter().map(|t| f(&t.stats)).sum() };
    let dispatched = sum(|s| s.dispatched.load(Ordering::Relaxed));
    let pushed = sum(|s| s.dispatch_pushed.load(Ordering::Relaxed));
    let teams_all = setup
        .tablets
        .iter()
        .filter(|t| {
            t.stats.dispatch_pushed.load(Ordering::Relaxed)
                == t.stats.dispatched.load(Ordering::Relaxed)
        })
        .count();
    println!(
        "\npush streams: {opened}/{n} opened (in {open_s:.1} s), {still_open}/{n} still open at the end; \
         {pushed}/{dispatched} dispatches reached their team's tablet by push; \
         {teams_all}/{n} tablets got every dispatch; {} pushes in all, {} resyncs (lagged), {} signed-out",
        sum(|s| s.pushes.load(Ordering::Relaxed)),
        sum(|s| s.resyncs.load(Ordering::Relaxed)),
        sum(|s| s.signed_out.load(Ordering::Relaxed)),
        n = setup.tablets.len(),
    );
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "\n| process | RSS idle MiB | RSS streams open MiB | peak RSS sampled MiB | VmHWM MiB |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (i, (name, _)) in pids.iter().enumerate() {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            mib(idle_mem[i].1),
            mib(streams_mem[i].1),
            mib(peak_rss[i].load(Ordering::Relaxed)),
            mib(end_mem[i].0),
        );
    }
    let warnings = std::fs::read_to_string(dir.join("ems.log"))
        .map(|s| {
            s.lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .count()
        })
        .unwrap_or(0);
    println!(
        "\nems log: {warnings} warning/error lines ({})",
        dir.join("ems.log").display()
    );
    if !args.check {
        return Ok(ExitCode::SUCCESS);
    }
    let n = setup.tablets.len();
    let mut failures = Vec::new();
    if !errors.is_empty() {
        failures.push(format!("{} kinds of failed request", errors.len()));
    }
    if opened != n || still_open != n {
        failures.push(format!(
            "push streams: {opened}/{n} opened, {still_open}/{n} open to the end"
        ));
    }
    if dispatched == 0 || pushed != dispatched {
        failures.push(format!("{pushed}/{dispatched} dispatches pushed"));
    }
    let acknowledged = record
        .acknowledged
        .lock()
        .map(|a| a.clone())
        .unwrap_or_default();
    let summaries = record.summaries.load(Ordering::Relaxed);
    failures.extend(stored_events_check(&ems_db, &acknowledged, summaries).await?);
    println!(
        "requests sent again after a connection failure or timeout: {}",
        record.resent.load(Ordering::Relaxed)
    );
    if failures.is_empty() {
        println!(
            "\ncheck: passed ({} acknowledged crew events and consent taps, each stored; \
             {summaries} views for {summaries} summaries; view log intact)",
            acknowledged.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\ncheck: FAILED");
        for f in &failures {
            println!("- {f}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// After ems stopped: the bench's events in ems are exactly the acknowledged crew events and
/// consent taps (none lost, none that was not acknowledged), the view log holds one view per
/// answered summary, and its chain verifies. (A key cannot be stored twice: the database's
/// unique key on (incident, idempotency key) forbids it.)
async fn stored_events_check(
    ems_db: &Path,
    acknowledged: &[String],
    summaries: u64,
) -> Result<Vec<String>> {
    let store = EmsSqlite::open(ems_db)?;
    let mut stored: HashSet<String> = HashSet::new();
    for bureau in store.bureaus().await? {
        let filter = myna_store::ems::IncidentFilter {
            open_only: false,
            team: None,
            limit: u32::MAX,
        };
        for incident in store.incidents(bureau.id, filter).await? {
            for event in &incident.log.events {
                if event.idempotency_key.starts_with("load-") {
                    stored.insert(event.idempotency_key.clone());
                }
            }
        }
    }
    let mut failures = Vec::new();
    let acked: HashSet<String> = acknowledged.iter().cloned().collect();
    let missing = acked.difference(&stored).count();
    if missing > 0 {
        failures.push(format!("{missing} acknowledged events missing from ems"));
    }
    let unacknowledged = stored.difference(&acked).count();
    if unacknowledged > 0 {
        failures.push(format!(
            "{unacknowledged} events in ems that the tablets never saw acknowledged"
        ));
    }
    println!("stored bench events: {}", stored.len());
    match store.verify_view_log().await? {
        myna_store::ChainReport::Intact { entries, .. } => {
            println!("view log: {entries} entries, chain intact");
            if entries != summaries {
                failures.push(format!(
                    "{entries} views in the log for {summaries} answered summaries"
                ));
            }
        }
        myna_store::ChainReport::Broken { verified, .. } => {
            failures.push(format!("view log broken after {verified} entries"));
        }
    }
    Ok(failures)
}

async fn desk_sign_in(
    http: &Client<HttpConnector, Full<Bytes>>,
    base: &str,
    bureau: &str,
    record: &Record,
) -> Result<String> {
    let body = form_encode(&[
        ("bureau", bureau),
        ("login", "dispatcher"),
        ("password", PASSWORD),
    ]);
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("{base}/login"))
        .header("origin", base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))?;
    let t0 = Instant::now();
    let resp = http.request(req).await?;
    record.ok("desk sign-in", t0);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{}=", myna_ems::auth::SESSION_COOKIE))
                .and_then(|rest| rest.split(';').next())
                .map(str::to_owned)
        });
    cookie.with_context(|| format!("the dispatcher was not signed in: {}", resp.status()))
}

/// Follows one tablet's push stream until the benchmark stops: each new incident id goes to
/// the dispatch waiting for it, and each push makes the tablet refresh that incident, as the
/// real tablet's sync does.
async fn follow_stream(
    tablet: Arc<Tablet>,
    tx: mpsc::UnboundedSender<(i64, Instant)>,
    record: Arc<Record>,
    opening: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let body = {
        let _permit = opening.acquire().await;
        let t0 = Instant::now();
        match tablet.client.stream(&tablet.session).await {
            Ok(b) => {
                record.ok("stream open", t0);
                tablet.stats.opened.store(true, Ordering::Relaxed);
                b
            }
            Err(e) => {
                record.call_err("stream open", &e);
                tablet.stats.open_failed.store(true, Ordering::Relaxed);
                return;
            }
        }
    };
    let mut body = body;
    let mut parser = SseParser::default();
    let mut seen = HashSet::new();
    loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = stop.changed() => return,
        };
        let data = match frame {
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
            Some(Err(e)) => {
                record.err(
                    "push stream",
                    format!(
                        "ended: {}",
                        e.to_string().chars().take(60).collect::<String>()
                    ),
                );
                tablet.stats.ended_early.store(true, Ordering::Relaxed);
                return;
            }
            None => {
                record.err("push stream", "closed by ems".into());
                tablet.stats.ended_early.store(true, Ordering::Relaxed);
                return;
            }
        };
        for (event, data) in parser.push(&data) {
            match event.as_str() {
                "incident" => {
                    tablet.stats.pushes.fetch_add(1, Ordering::Relaxed);
                    let Ok(id) = data.parse::<i64>() else {
                        continue;
                    };
                    if seen.insert(id) {
                        let _ = tx.send((id, Instant::now()));
                    }
                    let (tablet, record) = (tablet.clone(), record.clone());
                    tokio::spawn(async move {
                        let t0 = Instant::now();
                        match tablet.client.incident(&tablet.session, id).await {
                            Ok(_) => record.ok("incident refresh (on push)", t0),
                            Err(e) => record.call_err("incident refresh (on push)", &e),
                        }
                    });
                }
                "resync" => {
                    tablet.stats.resyncs.fetch_add(1, Ordering::Relaxed);
                }
                "signed_out" => {
                    tablet.stats.signed_out.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }
}

/// One incident: the dispatcher creates and assigns it at the desk, the push brings it to the
/// team's tablet, and the crew's taps follow the timeline.
#[allow(clippy::too_many_arguments)]
async fn dispatch(
    setup: &Setup,
    i: usize,
    k: usize,
    myna: bool,
    certificate: String,
    timeline: f64,
    base: &str,
    record: &Record,
) {
    let tablet = &setup.tablets[i];
    let Some(desk) = setup.desk_of.get(i).and_then(|b| setup.desks.get(*b)) else {
        return;
    };
    let t_call = tokio::time::Instant::now();
    // One creation per team at a time, so the next new id on its stream is this incident.
    let id = {
        let mut incoming = tablet.new_incidents.lock().await;
        while incoming.try_recv().is_ok() {}
        let team = tablet.team.to_string();
        let category = serde_json::to_value(ComplaintCategory::ChestPain)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let body = form_encode(&[
            ("location", "川崎市中原区小杉町3丁目"),
            ("category", &category),
            ("note", "負荷試験"),
            ("card_prep", "on"),
            ("team", &team),
            ("csrf", &desk.csrf),
        ]);
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{base}/dispatch/incidents"))
            .header("origin", base)
            .header(
                "cookie",
                format!("{}={}", myna_ems::auth::SESSION_COOKIE, desk.cookie),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)));
        let Ok(req) = req else { return };
        let t0 = Instant::now();
        match desk.http.request(req).await {
            Ok(resp) if resp.status() == StatusCode::SEE_OTHER => {
                let _ = resp.into_body().collect().await;
                record.ok("desk: create and dispatch", t0);
            }
            Ok(resp) => {
                record.err(
                    "desk: create and dispatch",
                    format!("HTTP {}", resp.status().as_u16()),
                );
                return;
            }
            Err(e) => {
                record.err("desk: create and dispatch", format!("connection: {e}"));
                return;
            }
        }
        tablet.stats.dispatched.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(Duration::from_secs(30), incoming.recv()).await {
            Ok(Some((id, at))) => {
                tablet.stats.dispatch_pushed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut m) = record.latencies.lock() {
                    m.entry("push: desk post → tablet")
                        .or_default()
                        .push(at.saturating_duration_since(t0).as_micros() as u64);
                }
                id
            }
            _ => {
                record.err("push: desk post → tablet", "not received in 30 s".into());
                return;
            }
        }
    };
    let hospital = myna_domain::hospitals::Registry::shared()
        .ok()
        .and_then(|r| {
            r.hospitals()
                .get(k % r.hospitals().len().max(1))
                .map(|h| h.id.clone())
        })
        .unwrap_or_default();
    let mut n = 0;
    for (minute, step, myna_only) in TIMELINE {
        if myna_only && !myna {
            continue;
        }
        tokio::time::sleep_until(t_call + Duration::from_secs_f64(minute * 60.0 / timeline)).await;
        n += 1;
        let _in_order = tablet.outbox.lock().await;
        let key = format!("load-{k}-{n}");
        let device_at_ms = Some(chrono::Utc::now().timestamp_millis());
        let event = match step {
            Step::Phase(phase) => CrewEvent::Phase { phase },
            Step::Vitals => CrewEvent::Vitals {
                vitals: Vitals {
                    pulse: Some(96),
                    respiratory_rate: Some(20),
                    spo2: Some(95),
                    ..Vitals::default()
                },
            },
            Step::FaceCheck => CrewEvent::IdentityConfirmed {
                certificate: certificate.clone(),
            },
            Step::Inquiry => CrewEvent::Inquiry {
                hospital: hospital.clone(),
                result: InquiryResult::Accepted,
                reason: None,
            },
            Step::Destination => CrewEvent::Destination {
                hospital: hospital.clone(),
                patients: if myna { vec![1] } else { Vec::new() },
            },
            Step::Closed => CrewEvent::Closed,
            Step::Summary => {
                let body = SummaryBody {
                    certificate: certificate.clone(),
                    view: Default::default(),
                    consent: Some(ConsentTap {
                        idempotency_key: key.clone(),
                        device_at_ms,
                        consent: Consent::Obtained,
                    }),
                };
                let t0 = Instant::now();
                let sent =
                    resending(record, || tablet.client.summary(&tablet.session, id, &body)).await;
                match sent {
                    Ok(_) => {
                        record.ok("summary (with consent)", t0);
                        record.summaries.fetch_add(1, Ordering::Relaxed);
                        record.acknowledge(key.clone());
                    }
                    Err(e) => record.call_err("summary (with consent)", &e),
                }
                continue;
            }
        };
        let kind = match step {
            Step::FaceCheck => "crew event: face check",
            _ => "crew event: phase, vitals, inquiry, destination, close",
        };
        let body = EventBody {
            idempotency_key: key,
            device_at_ms,
            event,
        };
        let t0 = Instant::now();
        match resending(record, || {
            tablet.client.post_event(&tablet.session, id, &body)
        })
        .await
        {
            Ok(_) => {
                record.ok(kind, t0);
                record.acknowledge(body.idempotency_key.clone());
            }
            Err(e) => record.call_err(kind, &e),
        }
    }
}

/// Sends again (the same request, so the same idempotency key) after a connection failure or
/// timeout, up to `SEND_ATTEMPTS` times a second apart, as the tablet's outbox does.
async fn resending<T, F, Fut>(record: &Record, mut send: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let mut attempt = 1;
    loop {
        match send().await {
            Err(CallError::Offline(_)) if attempt < SEND_ATTEMPTS => {
                attempt += 1;
                record.resent.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            done => return done,
        }
    }
}

struct Healthz {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    per_s: f64,
}

/// `GET /healthz` with `concurrency` requests in flight for `duration` (what the HTTP stack
/// and this machine allow).
async fn healthz(base: &str, concurrency: usize, duration: Duration) -> Result<Healthz> {
    let http = desk_client(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, uri) = (http.clone(), format!("{base}/healthz"));
        tasks.push(tokio::spawn(async move {
            let mut v = Vec::new();
            while started.elapsed() < duration {
                let req = Request::builder().uri(&uri).body(Full::new(Bytes::new()))?;
                let t0 = Instant::now();
                let resp = http.request(req).await?;
                let ok = resp.status().is_success();
                let _ = resp.into_body().collect().await;
                if ok {
                    v.push(t0.elapsed().as_micros() as u64);
                }
            }
            anyhow::Ok(v)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let ms = |p: f64| nearest_rank(&all, p) as f64 / 1000.0;
    Ok(Healthz {
        n: all.len(),
        p50: ms(0.5),
        p90: ms(0.9),
        p99: ms(0.99),
        max: all.last().copied().unwrap_or(0) as f64 / 1000.0,
        per_s: all.len() as f64 / secs,
    })
}
