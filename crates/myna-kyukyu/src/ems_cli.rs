//! `ems …` and `terminal …`: serve the bureau's service and the tablet, and the admin commands
//! (seed a bureau, register and revoke terminals, reset a crew password, verify the view log).

use crate::store::{DbTarget, EmsDb};
use anyhow::{Context, Result, bail};
use myna_ems::seed::{KAWASAKI_CODE, KAWASAKI_TEAMS};
use myna_ems::{Ems, router};
use myna_store::ChainReport;
use myna_store::ems::{BureauId, EmsStore, Role};
use myna_terminal::card::{DemoCard, EmulatedSlot};
use myna_terminal::ems_client::EmsClient;
use myna_terminal::outbox::Outbox;
use myna_terminal::{Terminal, TerminalConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum EmsCommand {
    /// Serve the ems API, the push stream and the desk UI.
    Serve {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = "127.0.0.1:8441")]
        listen: SocketAddr,
        /// Minutes after which a hospital's acceptance status is shown as stale and ranked
        /// lower (default: the transport criteria table's, 120).
        #[arg(long)]
        status_stale_minutes: Option<i64>,
        /// Days after which a view without consent still waiting for the privacy officer's
        /// decision is highlighted on the review queue.
        #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(i64).range(1..=3650))]
        review_due_days: i64,
        #[command(flatten)]
        checkpoints: crate::checkpoint::CheckpointArgs,
        #[command(flatten)]
        tls: crate::tls::TlsArgs,
        /// The CA certificate(s) to trust for an `https://` provider (default: the platform's).
        #[arg(long)]
        provider_ca: Option<PathBuf>,
        /// A host name browsers and tablets use for ems (repeat for more; with or without
        /// `:port`). ems answers only its own listen address (and `localhost` on loopback) and
        /// these names, which stops DNS rebinding.
        #[arg(long = "public-host")]
        public_hosts: Vec<String>,
        #[command(flatten)]
        device_ca: DeviceCaArgs,
        /// Seconds between an open push stream's checks of its credential (a revocation ends
        /// a stream at once; the check catches an ended shift or sign-out).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        stream_recheck_s: u64,
    },
    /// Create 川崎市消防局 with its 7 stations, 31 teams, a dispatcher, an admin and one crew
    /// account per team. Prints the generated passwords once.
    SeedKawasaki {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long)]
        provider_url: String,
        /// File holding the bureau's provider credential (`provider org add` writes one).
        /// ems keeps its path, never the credential; it must be readable by its owner only.
        #[arg(long)]
        provider_token_file: PathBuf,
    },
    /// Point a bureau at its provider: the URL and the file holding the credential (after the
    /// provider moved, the credential was rotated, or an upgrade dropped a credential kept in
    /// the database).
    SetProvider {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = KAWASAKI_CODE)]
        bureau: String,
        #[arg(long)]
        provider_url: String,
        #[arg(long)]
        provider_token_file: PathBuf,
    },
    /// Set whom the bureau's public page (/public/<code>) tells citizens to contact about
    /// マイナ救急, e.g. a section and its phone number; an empty text names the bureau itself.
    SetPublicContact {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = KAWASAKI_CODE)]
        bureau: String,
        #[arg(long)]
        contact: String,
    },
    /// Registered terminals.
    #[command(subcommand)]
    Terminal(TerminalAdmin),
    /// Set a crew member's (or dispatcher's) password; reads it from standard input.
    ResetPassword {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = KAWASAKI_CODE)]
        bureau: String,
        #[arg(long)]
        login: String,
    },
    /// Clear an account's failed sign-ins and lock (for when no admin can sign in to the
    /// admin page).
    Unlock {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = KAWASAKI_CODE)]
        bureau: String,
        #[arg(long)]
        login: String,
    },
    /// The bureau's hospitals' reads on their way to the provider (for the patient's history):
    /// how many were delivered and wait, and each one the provider refused, with the reason.
    HospitalReads {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = KAWASAKI_CODE)]
        bureau: String,
        /// Queue the refused reads again (once their cause is fixed); the running service
        /// reports them within seconds.
        #[arg(long)]
        requeue: bool,
    },
    /// Verify the hash chains of ems's view log and of the privacy officer's review log.
    VerifyViews {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
    },
}

#[derive(clap::Subcommand)]
pub enum TerminalAdmin {
    /// Register a terminal for a team; writes its credential to a file (mode 0600).
    Add {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = KAWASAKI_CODE)]
        bureau: String,
        /// Team name, e.g. 中原救急1.
        #[arg(long)]
        team: String,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        token_file: PathBuf,
    },
    /// Revoke a terminal: its next request is refused and its crew sessions end.
    Revoke {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = KAWASAKI_CODE)]
        bureau: String,
        #[arg(long)]
        id: i64,
    },
    /// List the bureau's terminals.
    List {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = KAWASAKI_CODE)]
        bureau: String,
    },
    /// Open an enrollment invitation for a team: prints its one-time secret, which the crew
    /// gives `enroll --invite` on the tablet (valid 24 hours, one tablet).
    Invite {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = KAWASAKI_CODE)]
        bureau: String,
        /// Team name, e.g. 中原救急1.
        #[arg(long)]
        team: String,
    },
    /// Invitations not yet used nor expired.
    Invites {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = KAWASAKI_CODE)]
        bureau: String,
    },
    /// Cancel an open invitation (e.g. its secret went to the wrong person).
    CancelInvite {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = KAWASAKI_CODE)]
        bureau: String,
        /// The invitation's number (`ems terminal invites`).
        #[arg(long)]
        id: i64,
    },
    /// Enrollment requests waiting for approval, with their comparison codes.
    Pending {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = KAWASAKI_CODE)]
        bureau: String,
    },
    /// Approve an enrollment request (compare its code with the tablet's first): issues the
    /// tablet's certificate from the device CA and registers it for its invitation's team.
    Approve {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = KAWASAKI_CODE)]
        bureau: String,
        /// The request's number (`ems terminal pending`).
        #[arg(long)]
        id: i64,
        #[command(flatten)]
        device_ca: DeviceCaArgs,
    },
    /// Reject an enrollment request.
    Reject {
        #[arg(long, default_value = "ems.db")]
        db: DbTarget,
        #[arg(long, default_value = KAWASAKI_CODE)]
        bureau: String,
        #[arg(long)]
        id: i64,
    },
}

/// The bureau's device CA (`tls device-ca` makes one).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct DeviceCaArgs {
    /// The device CA's certificate: tablets present client certificates chaining to it, and
    /// bearer tokens are refused.
    #[arg(long, requires = "device_ca_key")]
    pub device_ca_cert: Option<PathBuf>,
    /// Its key (owner-only), with which ems signs approved enrollments.
    #[arg(long, requires = "device_ca_cert")]
    pub device_ca_key: Option<PathBuf>,
}

impl DeviceCaArgs {
    pub fn load(&self) -> Result<Option<myna_ems::enroll::DeviceCa>> {
        let (Some(cert), Some(key)) = (&self.device_ca_cert, &self.device_ca_key) else {
            return Ok(None);
        };
        let key_pem = crate::secret_file::read_private(key)?;
        let cert_pem =
            std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
        // Usable now, not at the first approval.
        myna_tls::certificates(cert)?;
        Ok(Some(myna_ems::enroll::DeviceCa::new(
            cert_pem,
            key_pem.to_string(),
        )))
    }
}

/// `enroll`: the tablet asks ems for its client certificate.
#[derive(clap::Args)]
pub struct EnrollArgs {
    /// Base URL of the bureau's ems.
    #[arg(long)]
    pub ems: String,
    /// The CA certificate(s) to trust for an `https://` ems (default: the platform's).
    #[arg(long)]
    pub ems_ca: Option<PathBuf>,
    #[arg(long, default_value = KAWASAKI_CODE)]
    pub bureau: String,
    /// The invitation's one-time secret from the bureau's admin (`ems terminal invite`, or
    /// the admin page). `-` reads it from standard input; the variable keeps it out of the
    /// process list, which other local users can read. Not needed to resume a filed request.
    /// (A secret may begin with `-`: it is taken as the value, not as an option.)
    #[arg(
        long,
        env = "MYNA_ENROLL_INVITE",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub invite: Option<String>,
    /// How the admin will know this tablet, e.g. "中原救急1 車載タブレット".
    #[arg(long)]
    pub label: String,
    /// Where the certificate goes once approved.
    #[arg(long, default_value = "terminal.pem")]
    pub cert: PathBuf,
    /// The tablet's key, made here (owner-only); it never leaves the tablet.
    #[arg(long, default_value = "terminal.key")]
    pub key: PathBuf,
    /// Give up waiting for the admin after this many minutes (run again to keep waiting).
    #[arg(long, default_value_t = 30)]
    pub wait_minutes: u64,
}

#[derive(clap::Args)]
pub struct TerminalArgs {
    /// Base URL of the bureau's ems.
    #[arg(long)]
    pub ems: String,
    /// The tablet's client certificate (`enroll` fetches it); with --key.
    #[arg(long, requires = "key", conflicts_with = "token_file")]
    pub cert: Option<PathBuf>,
    /// The tablet's key (`enroll` made it).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Instead: a file holding a bearer credential (`ems terminal add`), for an ems without a
    /// device CA on loopback.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:8442")]
    pub listen: SocketAddr,
    /// The durable outbox of incident events (no medical data).
    #[arg(long, default_value = "terminal-outbox.db")]
    pub outbox: PathBuf,
    /// PC/SC reader name (default: any reader).
    #[arg(long)]
    pub reader: Option<String>,
    /// Use an emulated reader with this card deck (a `card deck` directory) instead of PC/SC.
    #[arg(long)]
    pub demo_deck: Option<PathBuf>,
    /// Emulated reader's latency per card command.
    #[arg(long, default_value_t = 25)]
    pub latency_ms: u64,
    /// Drop the summary after this many seconds without a touch.
    #[arg(long, default_value_t = 600)]
    pub idle_timeout_s: u64,
    /// Also write the one-time launch URL of the crew UI to this file (mode 0600).
    #[arg(long)]
    pub launch_file: Option<PathBuf>,
    /// The CA certificate(s) to trust for an `https://` ems (default: the platform's).
    #[arg(long)]
    pub ems_ca: Option<PathBuf>,
}

pub async fn open_bureau(db: &DbTarget, code: &str) -> Result<(EmsDb, BureauId)> {
    let (store, bureau) = open_bureau_record(db, code).await?;
    Ok((store, bureau.id))
}

/// The store and the whole bureau record (its code and name, for what ems issues in its name).
pub async fn open_bureau_record(
    db: &DbTarget,
    code: &str,
) -> Result<(EmsDb, myna_store::ems::Bureau)> {
    let store = EmsDb::open_existing(db).await?;
    let bureau = store
        .bureau(code)
        .await?
        .with_context(|| format!("no bureau {code:?} in {db}"))?;
    Ok((store, bureau))
}

/// The absolute name of a provider credential file, once it is readable and private.
pub fn credential_file_name(path: &Path) -> Result<String> {
    myna_ems::read_credential(path).map_err(|e| anyhow::anyhow!(e))?;
    let absolute =
        std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
    absolute
        .to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8", absolute.display()))
}

pub fn hash_password(password: &str) -> Result<String> {
    myna_ems::auth::hash_password(password).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Registers a terminal for `team`; returns its id and credential.
pub async fn add_terminal<S: EmsStore>(
    store: &S,
    bureau: BureauId,
    team: &str,
    label: &str,
) -> Result<(i64, String)> {
    let teams = store.teams(bureau).await?;
    let Some(t) = teams.iter().find(|t| t.name == team) else {
        bail!("no team {team:?} in this bureau");
    };
    let token = myna_web::random_token();
    let id = store
        .add_terminal(bureau, t.id, label, myna_store::hash_secret(&token))
        .await?;
    Ok((id, token))
}

/// How `ems serve` (and the demo) runs ems.
pub struct EmsServeOptions {
    pub status_stale_minutes: Option<i64>,
    pub review_due_days: i64,
    pub checkpoints: crate::checkpoint::CheckpointArgs,
    pub tls: Option<Arc<myna_tls::rustls::ServerConfig>>,
    pub provider_ca: Option<PathBuf>,
    pub public_hosts: Vec<String>,
    /// With it, tablets prove themselves by client certificates (and `tls` verifies them).
    pub device_ca: Option<myna_ems::enroll::DeviceCa>,
    pub stream_recheck: std::time::Duration,
}

pub async fn serve_ems(
    store: Arc<EmsDb>,
    listener: tokio::net::TcpListener,
    options: EmsServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    crate::tls::check_listener(&listener, options.tls.as_ref())?;
    let addr = listener.local_addr()?;
    anyhow::ensure!(
        options.device_ca.is_some() || addr.ip().is_loopback(),
        "{addr} is reachable from other hosts: tablets there must prove themselves by \
         certificate; give --device-ca-cert and --device-ca-key (`tls device-ca` makes them)"
    );
    anyhow::ensure!(
        options.device_ca.is_none() || options.tls.is_some(),
        "tablet certificates need TLS: give --tls-cert and --tls-key"
    );
    let signing = crate::checkpoint::spawn(
        &options.checkpoints,
        crate::checkpoint::ChainStore::Ems(store.clone()),
    )?;
    let mut ems = Ems::new(store, Arc::new(chrono::Utc::now));
    ems.tls = options.tls.is_some();
    let hosts = myna_web::security::AllowedHosts::for_listener(
        listener.local_addr()?,
        &options.public_hosts,
    );
    anyhow::ensure!(
        !hosts.is_empty(),
        "ems listens on every address: name the hosts browsers and tablets use with --public-host"
    );
    ems.allowed_hosts = Some(Arc::new(hosts));
    ems.device_ca = options.device_ca.map(Arc::new);
    ems.stream_recheck = options.stream_recheck;
    if let Some(ca) = &options.provider_ca {
        ems.provider_tls = Some(crate::tls::client_roots(Some(ca))?);
        ems.provider_ca = Some(ca.clone());
    }
    ems.review_due_days = options.review_due_days;
    if let Some(m) = options.status_stale_minutes {
        anyhow::ensure!(m > 0, "--status-stale-minutes must be positive");
        ems.status_stale_after_minutes = m;
    }
    // A bureau that cannot reach its provider shows it on the first ambulance call; say it now.
    for b in ems.store.bureaus().await? {
        if let Err(e) = myna_ems::read_credential(Path::new(&b.provider_credential_file)) {
            eprintln!(
                "WARNING: bureau {} cannot ask the provider for summaries: {e}. Fix it with \
                 `myna-kyukyu ems set-provider --bureau {} --provider-url URL \
                 --provider-token-file FILE`.",
                b.code, b.code
            );
            tracing::error!(bureau = %b.code, error = %e, "no usable provider credential");
        }
    }
    let ems = Arc::new(ems);
    // Other ems processes on the same database (PostgreSQL) tell this one's streams too.
    let follow = ems.follow_other_processes();
    let purge = tokio::spawn(myna_ems::purge_handoffs_forever(ems.clone()));
    let relay = tokio::spawn(myna_ems::relay::relay_hospital_reads_forever(ems.clone()));
    let served = myna_web::serve::serve(
        listener,
        router(ems),
        Default::default(),
        options.tls,
        shutdown,
    )
    .await
    .context("ems server");
    purge.abort();
    relay.abort();
    follow.abort();
    if let Some(task) = signing {
        task.abort();
    }
    served
}

/// Loads a `card deck` directory as the demo reader's cards.
pub fn load_demo_deck(dir: &Path) -> Result<Vec<DemoCard>> {
    let deck = crate::cards::Deck::load(dir)?;
    let mut out = Vec::new();
    for c in &deck.cards {
        if c.profile_file.is_empty() {
            continue;
        }
        let profile =
            crate::profile_file::ProfileFile::load(&dir.join(&c.profile_file))?.to_profile()?;
        out.push(DemoCard {
            id: c.id.clone(),
            label: c.label_ja.clone(),
            card: myna_card_emu::card::Card::new(&profile)?,
        });
    }
    Ok(out)
}

pub async fn serve_terminal(
    args: TerminalArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // The crew UI acts for the signed-in crew: only the tablet's own browser may reach it.
    myna_terminal::Guard::check_listen(args.listen)?;
    let client = match (&args.cert, &args.key, &args.token_file) {
        (Some(cert), Some(key), None) => EmsClient::without_bearer(
            &args.ems,
            crate::tls::client_identity(args.ems_ca.as_deref(), cert, key)?,
        )?,
        (None, None, Some(token_file)) => EmsClient::new(
            &args.ems,
            &crate::provider::read_token(token_file)?,
            crate::tls::client_roots(args.ems_ca.as_deref())?,
        )?,
        _ => {
            bail!("give the tablet's credential: --cert and --key (from `enroll`), or --token-file")
        }
    };
    let outbox = Outbox::open(&args.outbox)?;
    let config = TerminalConfig {
        idle_timeout: Duration::from_secs(args.idle_timeout_s),
    };
    let terminal = match &args.demo_deck {
        Some(dir) => {
            let deck = load_demo_deck(dir)?;
            let latency = Duration::from_millis(args.latency_ms);
            Terminal::with_demo(client, outbox, config, |on_card| {
                EmulatedSlot::new(deck, latency, on_card)
            })
        }
        None => {
            let t = Terminal::new(client, outbox, config);
            myna_terminal::card::watch_pcsc(args.reader.clone(), t.card_callback())
                .context("starting the PC/SC watcher")?
                .detach();
            t
        }
    };
    terminal.start();
    crate::portal::serve_own_window(
        args.listen,
        myna_terminal::WINDOW_COOKIE,
        "terminal: open {launch} in the tablet's browser (once; it sets the window's key)",
        args.launch_file.as_deref(),
        |guard| myna_terminal::router(terminal, guard),
        shutdown,
    )
    .await
    .context("terminal server")
}

pub async fn run(cmd: EmsCommand) -> Result<ExitCode> {
    match cmd {
        EmsCommand::Serve {
            db,
            listen,
            status_stale_minutes,
            review_due_days,
            checkpoints,
            tls,
            provider_ca,
            public_hosts,
            device_ca,
            stream_recheck_s,
        } => {
            let store = Arc::new(EmsDb::open(&db).await?);
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let tls = tls.server(device_ca.device_ca_cert.as_deref())?;
            let device_ca = device_ca.load()?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            println!("ems: {scheme}://{}", listener.local_addr()?);
            serve_ems(
                store,
                listener,
                EmsServeOptions {
                    status_stale_minutes,
                    review_due_days,
                    checkpoints,
                    tls,
                    provider_ca,
                    public_hosts,
                    device_ca,
                    stream_recheck: std::time::Duration::from_secs(stream_recheck_s),
                },
                crate::provider::shutdown_signal(),
            )
            .await?;
        }
        EmsCommand::SeedKawasaki {
            db,
            provider_url,
            provider_token_file,
        } => {
            myna_tls::check_url(&provider_url)?;
            let credential_file = credential_file_name(&provider_token_file)?;
            let store = EmsDb::open(&db).await?;
            let mut passwords = Vec::new();
            let mut failure = None;
            let seed = myna_ems::seed::kawasaki(&provider_url, &credential_file, |_, login| {
                let password = myna_web::random_token();
                let hash = hash_password(&password).unwrap_or_else(|e| {
                    failure = Some(e);
                    String::new()
                });
                passwords.push((login.to_owned(), password));
                hash
            });
            if let Some(e) = failure {
                return Err(e);
            }
            store.seed_bureau(seed).await?;
            println!("seeded {KAWASAKI_CODE}: 7 stations, 31 teams. Passwords (shown once):");
            for (login, password) in passwords {
                println!("  {login:<12} {password}");
            }
        }
        EmsCommand::SetProvider {
            db,
            bureau,
            provider_url,
            provider_token_file,
        } => {
            myna_tls::check_url(&provider_url)?;
            let credential_file = credential_file_name(&provider_token_file)?;
            let (store, id) = open_bureau(&db, &bureau).await?;
            store
                .set_provider(id, &provider_url, &credential_file)
                .await?;
            println!("{bureau}: provider {provider_url}, credential in {credential_file}");
        }
        EmsCommand::SetPublicContact {
            db,
            bureau,
            contact,
        } => {
            let contact = contact.trim();
            anyhow::ensure!(
                contact.chars().count() <= 500 && !contact.chars().any(char::is_control),
                "the contact is one line of at most 500 characters"
            );
            let (store, id) = open_bureau(&db, &bureau).await?;
            store.set_public_contact(id, contact).await?;
            println!("{bureau}: public contact set");
        }
        EmsCommand::Terminal(TerminalAdmin::Add {
            db,
            bureau,
            team,
            label,
            token_file,
        }) => {
            let (store, bureau) = open_bureau(&db, &bureau).await?;
            let label = label.unwrap_or_else(|| format!("{team} タブレット"));
            let (id, token) = add_terminal(&store, bureau, &team, &label).await?;
            crate::provider::write_token(&token_file, &token)?;
            println!(
                "terminal {id} ({label}) registered; credential in {}",
                token_file.display()
            );
        }
        EmsCommand::Terminal(TerminalAdmin::Revoke { db, bureau, id }) => {
            let (store, bureau) = open_bureau(&db, &bureau).await?;
            if !store.revoke_terminal(bureau, id).await? {
                bail!("no terminal {id} in this bureau");
            }
            // Running ems processes on a shared database end the terminal's streams now.
            store
                .publish_change(myna_store::ems::ChangeNote {
                    origin: myna_web::random_u64(),
                    bureau,
                    what: myna_store::ems::Changed::TerminalRevoked(id),
                })
                .await;
            println!("terminal {id} revoked");
        }
        EmsCommand::Terminal(TerminalAdmin::List { db, bureau }) => {
            let (store, bureau) = open_bureau(&db, &bureau).await?;
            let teams = store.teams(bureau).await?;
            for t in store.terminals(bureau).await? {
                let team = teams
                    .iter()
                    .find(|x| x.id == t.team_id)
                    .map_or("?", |x| x.name.as_str());
                let state = if t.revoked { "revoked" } else { "active" };
                let by = if t.certificate_bound {
                    "certificate"
                } else {
                    "token"
                };
                println!("{:>4}  {:<8} {by:<11} {team:<10} {}", t.id, state, t.label);
            }
        }
        EmsCommand::Terminal(TerminalAdmin::Pending { db, bureau }) => {
            let (store, bureau) = open_bureau(&db, &bureau).await?;
            let lapse = chrono::Utc::now().timestamp_millis()
                - myna_store::ems::EnrollmentLimits::default().pending_for_ms;
            let waiting: Vec<_> = store
                .enrollments(bureau, true)
                .await?
                .into_iter()
                .filter(|e| e.requested_ms >= lapse)
                .collect();
            if waiting.is_empty() {
                println!("no enrollment request is waiting");
            }
            for e in waiting {
                let at = chrono::DateTime::from_timestamp_millis(e.requested_ms)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                println!(
                    "{:>4}  code {}  {at}  from {:<15} {}",
                    e.id, e.code, e.requested_from, e.label
                );
            }
        }
        EmsCommand::Terminal(TerminalAdmin::Invite { db, bureau, team }) => {
            let (store, b) = open_bureau_record(&db, &bureau).await?;
            let teams = store.teams(b.id).await?;
            let Some(t) = teams.iter().find(|t| t.name == team) else {
                bail!("no team {team:?} in this bureau");
            };
            let now = chrono::Utc::now().timestamp_millis();
            let secret = myna_ems::enroll::invite(&store, &b, t.id, "cli", now)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .context("the team is not the bureau's")?;
            println!("invitation for {team} (24 hours, one tablet): {secret}");
        }
        EmsCommand::Terminal(TerminalAdmin::Invites { db, bureau }) => {
            let (store, b) = open_bureau_record(&db, &bureau).await?;
            let teams = store.teams(b.id).await?;
            let now = chrono::Utc::now().timestamp_millis();
            let invites = store.open_invites(b.id, now).await?;
            if invites.is_empty() {
                println!("no open invitation");
            }
            let clock = |ms: i64| {
                chrono::DateTime::from_timestamp_millis(ms)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            };
            for i in invites {
                let team = teams
                    .iter()
                    .find(|t| t.id == i.team_id)
                    .map_or("?", |t| t.name.as_str());
                println!(
                    "{:>4}  {team}  by {}  {}  until {}",
                    i.id,
                    i.created_by,
                    clock(i.created_ms),
                    clock(i.expires_ms)
                );
            }
        }
        EmsCommand::Terminal(TerminalAdmin::CancelInvite { db, bureau, id }) => {
            let (store, bureau) = open_bureau(&db, &bureau).await?;
            if !store
                .cancel_invite(bureau, id, chrono::Utc::now().timestamp_millis())
                .await?
            {
                bail!("invitation {id} is not open in this bureau");
            }
            println!("invitation {id} cancelled");
        }
        EmsCommand::Terminal(TerminalAdmin::Approve {
            db,
            bureau,
            id,
            device_ca,
        }) => {
            let Some(ca) = device_ca.load()? else {
                bail!("approving needs the device CA: --device-ca-cert and --device-ca-key");
            };
            let (store, b) = open_bureau_record(&db, &bureau).await?;
            let now = chrono::Utc::now();
            match myna_ems::enroll::approve(
                &store,
                &ca,
                &b,
                id,
                myna_store::ems::EnrollmentLimits::default(),
                now.timestamp_millis(),
                myna_ems::enroll::utc_today(now),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                Some(terminal) => println!("request {id} approved: terminal {terminal}"),
                None => bail!("request {id} is not waiting in this bureau"),
            }
        }
        EmsCommand::Terminal(TerminalAdmin::Reject { db, bureau, id }) => {
            let (store, bureau) = open_bureau(&db, &bureau).await?;
            if !store
                .reject_enrollment(bureau, id, chrono::Utc::now().timestamp_millis())
                .await?
            {
                bail!("request {id} is not waiting in this bureau");
            }
            println!("request {id} rejected");
        }
        EmsCommand::ResetPassword { db, bureau, login } => {
            let (store, bureau) = open_bureau(&db, &bureau).await?;
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.chars().count() < myna_ems::MIN_PASSWORD_CHARS {
                bail!(
                    "the password must have at least {} characters",
                    myna_ems::MIN_PASSWORD_CHARS
                );
            }
            let hash = hash_password(password)?;
            if !store.set_password(bureau, &login, hash).await? {
                bail!("no account {login:?} in this bureau");
            }
            println!("password of {login} set; its sessions ended");
        }
        EmsCommand::Unlock { db, bureau, login } => {
            let (store, bureau) = open_bureau(&db, &bureau).await?;
            if !store.clear_sign_in_failures(bureau, &login).await? {
                bail!("no account {login:?} in this bureau");
            }
            println!("{login}: failed sign-ins and lock cleared");
        }
        EmsCommand::HospitalReads {
            db,
            bureau,
            requeue,
        } => {
            let (store, _) = open_bureau(&db, &bureau).await?;
            let outbox = store.hospital_read_outbox(&bureau).await?;
            println!(
                "{bureau}: hospitals' reads delivered to the provider {}, waiting {}, refused {}",
                outbox.delivered,
                outbox.waiting,
                outbox.refused.len()
            );
            for r in &outbox.refused {
                let when = chrono::DateTime::from_timestamp_millis(r.refused_ms)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                println!("  view-log entry {}: refused {when}: {}", r.at.seq, r.error);
            }
            if requeue {
                let n = store
                    .requeue_refused_hospital_reads(&bureau, chrono::Utc::now().timestamp_millis())
                    .await?;
                println!("{n} refused reads queued again");
            }
        }
        EmsCommand::VerifyViews { db } => {
            let store = EmsDb::open(&db).await?;
            let named = bureau_names(&store).await;
            match store.verify_view_log().await? {
                ChainReport::Intact {
                    entries, head_hash, ..
                } => {
                    println!(
                        "view log intact: {entries} entries, head {}",
                        head_hash.unwrap_or_else(|| "-".into())
                    );
                }
                report @ ChainReport::Broken { .. } => {
                    println!(
                        "view log {}",
                        report.describe_break("bureau", &named).unwrap_or_default()
                    );
                    return Ok(ExitCode::from(1));
                }
            }
            match store.verify_review_log().await? {
                ChainReport::Intact {
                    entries,
                    partitions,
                    ..
                } => {
                    println!("review log intact: {entries} decisions in {partitions} chain(s)");
                }
                report @ ChainReport::Broken { .. } => {
                    println!(
                        "review log {}",
                        report.describe_break("bureau", &named).unwrap_or_default()
                    );
                    return Ok(ExitCode::from(1));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_terminal(args: TerminalArgs) -> Result<ExitCode> {
    serve_terminal(args, crate::provider::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// The demo's fixed passwords (synthetic data only; printed by the demo).
pub const DEMO_DISPATCHER_PASSWORD: &str = "dispatch-119";
pub const DEMO_ADMIN_PASSWORD: &str = "admin-2026-demo";
pub const DEMO_PRIVACY_PASSWORD: &str = "privacy-2026-demo";
pub const DEMO_CREW_PASSWORD: &str = "crew-2026-demo";
pub const DEMO_HOSPITAL_PASSWORD: &str = "er-2026-demo";

/// The crew login of team `name` in the Kawasaki seed.
pub fn kawasaki_crew_login(name: &str) -> Option<String> {
    KAWASAKI_TEAMS
        .iter()
        .flat_map(|(_, teams)| teams.iter())
        .position(|t| *t == name)
        .map(|i| myna_ems::seed::crew_login(i + 1))
}

pub fn demo_password(role: Role) -> &'static str {
    match role {
        Role::Dispatcher => DEMO_DISPATCHER_PASSWORD,
        Role::Admin => DEMO_ADMIN_PASSWORD,
        Role::Crew => DEMO_CREW_PASSWORD,
        Role::Hospital => DEMO_HOSPITAL_PASSWORD,
        Role::PrivacyOfficer => DEMO_PRIVACY_PASSWORD,
    }
}

/// A bureau's chain named by the bureau's code, to name it in a report; by its id if the
/// bureaus cannot be read.
pub async fn bureau_names(store: &EmsDb) -> impl Fn(i64) -> String + use<> {
    let codes: std::collections::HashMap<i64, String> = store
        .bureaus()
        .await
        .map(|all| all.into_iter().map(|b| (b.id, b.code)).collect())
        .unwrap_or_default();
    move |id| codes.get(&id).cloned().unwrap_or_else(|| id.to_string())
}

#[cfg(test)]
mod enroll_args_tests {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        enroll: super::EnrollArgs,
    }

    /// A URL-safe secret begins with `-` once in 64; it is still the option's value.
    #[test]
    fn an_invitation_secret_may_begin_with_a_hyphen() {
        let cli = Cli::try_parse_from([
            "enroll",
            "--ems",
            "https://ems",
            "--invite",
            "-Ab_9",
            "--label",
            "t",
        ])
        .map_err(|e| e.to_string());
        assert_eq!(cli.map(|c| c.enroll.invite), Ok(Some("-Ab_9".to_owned())));
    }
}
