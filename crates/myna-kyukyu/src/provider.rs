//! `provider serve | org add | revoke | query | shard | nodes`.

use crate::store::{DbTarget, ProviderDb};
use anyhow::{Context, Result, bail};
use myna_domain::access::{Consent, ExceptionReason};
use myna_domain::alerts::AlertTable;
use myna_domain::summary::View;
use myna_pki::TrustAnchor;
use myna_provider::client::{ProviderClient, SummaryOutcome};
use myna_provider::{
    BearerTokens, Callers, ClientCertificates, Provider, ViewerBody, router, system_clock,
};
use myna_store::{Organisation, ProviderStore, hash_secret};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Subcommand)]
pub enum ProviderCommand {
    /// Serve the emergency-summary API.
    Serve {
        #[arg(long, default_value = "data/provider.db")]
        db: DbTarget,
        /// DER certificate of the JPKI CA to trust.
        #[arg(long, default_value = "data/pki/ca.cert.der")]
        ca_cert: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8440")]
        listen: SocketAddr,
        #[command(flatten)]
        checkpoints: crate::checkpoint::CheckpointArgs,
        #[command(flatten)]
        tls: crate::tls::TlsArgs,
        /// The organisation CA (`tls org-ca`): callers prove themselves by a client
        /// certificate from it whose common name is their organisation id, and bearer tokens
        /// are refused. Required on a listener other hosts can reach.
        #[arg(long)]
        client_ca: Option<PathBuf>,
    },
    /// Register a calling organisation (a fire bureau) and print its credential once.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Put a certificate serial on the revocation list.
    Revoke {
        #[arg(long, default_value = "data/provider.db")]
        db: DbTarget,
        #[arg(long)]
        serial: String,
        #[arg(long, default_value = "keyCompromise")]
        reason: String,
    },
    /// Record that the claims held are complete through DATE: the date every summary reports
    /// (`data_currency.claims_through`; レセプト反映済み). `import` does not move it: the
    /// operator states it once the month's claims are in.
    ClaimsThrough {
        #[arg(long, default_value = "data/provider.db")]
        db: DbTarget,
        /// YYYY-MM-DD, not after today (Japan time).
        date: chrono::NaiveDate,
    },
    /// Ask a running provider for a summary, as a fire bureau's ems server would.
    Query(QueryArgs),
    /// Make an empty PostgreSQL provider database the coordinator of data nodes: each
    /// person-keyed table is split by hash of the person over the nodes (postgres_fdw). Run
    /// once, before `gen` or `import` (docs/deployment-postgres-fdw.md).
    Shard {
        /// The coordinator: an empty database (`postgres://…`).
        #[arg(long, value_parser = postgres_url)]
        db: String,
        /// A data node: an empty database (`postgres://user@host:port/db`), reachable from
        /// the coordinator's server. Give it once per node, in order.
        #[arg(long = "node", required = true, value_parser = postgres_url)]
        nodes: Vec<String>,
    },
    /// Print the data nodes of a sharded provider database (its partition map).
    Nodes {
        #[arg(long, value_parser = postgres_url)]
        db: String,
    },
}

#[derive(clap::Subcommand)]
pub enum OrgCommand {
    Add {
        #[arg(long, default_value = "data/provider.db")]
        db: DbTarget,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// Also write the credential to this file (mode 0600).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Disable an organisation: its token and its certificates are refused (within 5 s by a
    /// running provider, which caches a verified caller that long).
    Disable {
        #[arg(long, default_value = "data/provider.db")]
        db: DbTarget,
        #[arg(long)]
        id: String,
    },
    /// Revoke one key of an organisation (lost or leaked): every certificate for that key is
    /// refused within 5 s by a serving provider, and the organisation's other keys keep
    /// working. Issue the bureau a new key and certificate with `tls org-cert`.
    RevokeCert {
        #[arg(long, default_value = "data/provider.db")]
        db: DbTarget,
        /// The certificate (PEM); its common name names the organisation.
        #[arg(
            long,
            required_unless_present = "public_key_sha256",
            conflicts_with = "public_key_sha256"
        )]
        cert: Option<PathBuf>,
        /// Or the SHA-256 of its public key (SubjectPublicKeyInfo, 64 hex digits), with --org.
        #[arg(long, requires = "org")]
        public_key_sha256: Option<String>,
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value = "keyCompromise")]
        reason: String,
    },
    /// Enable a disabled organisation again.
    Enable {
        #[arg(long, default_value = "data/provider.db")]
        db: DbTarget,
        #[arg(long)]
        id: String,
    },
}

#[derive(clap::Args)]
pub struct QueryArgs {
    #[arg(long, default_value = "http://127.0.0.1:8440")]
    pub url: String,
    /// File holding the organisation credential (`<org>.<secret>`).
    #[arg(long, default_value = "data/provider.token")]
    pub token_file: PathBuf,
    /// Instead: the organisation's client certificate and key in one PEM file (mutual TLS).
    #[arg(long, conflicts_with = "token_file")]
    pub identity: Option<PathBuf>,
    /// DER certificate read from the card.
    #[arg(long)]
    pub cert: PathBuf,
    /// No consent: the exception, with its reason (unconscious, altered_consciousness, unable_to_communicate).
    #[arg(long)]
    pub exception: Option<String>,
    /// The full view (5 years) instead of the summary.
    #[arg(long)]
    pub full: bool,
    /// Print the JSON response.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = "中原救急1")]
    pub team: String,
    #[arg(long, default_value = "K-0001")]
    pub crew: String,
    /// The CA certificate(s) to trust for an `https://` provider (default: the platform's).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    #[arg(long, default_value = "DEMO-0001")]
    pub incident: String,
}

pub async fn run(cmd: ProviderCommand) -> Result<ExitCode> {
    match cmd {
        ProviderCommand::Serve {
            db,
            ca_cert,
            listen,
            checkpoints,
            tls,
            client_ca,
        } => {
            let store =
                Arc::new(ProviderDb::open_existing(&db, "; run `myna-kyukyu gen` first").await?);
            // Everything that can stop the server is read before it says it listens.
            let anchor = trust_anchor(&ca_cert)?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let tls = tls.server(client_ca.as_deref())?;
            crate::tls::check_listener(&listener, tls.as_ref())?;
            let addr = listener.local_addr()?;
            anyhow::ensure!(
                client_ca.is_some() || addr.ip().is_loopback(),
                "{addr} is reachable from other hosts: callers there must prove themselves by \
                 certificate; give --client-ca (`tls org-ca` makes one)"
            );
            let callers = match client_ca {
                Some(_) => Callers::Certificates(ClientCertificates::new()),
                None => Callers::Bearer(BearerTokens::new()),
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            println!(
                "provider listening on {scheme}://{}",
                listener.local_addr()?
            );
            serve(
                store,
                anchor,
                listener,
                &checkpoints,
                tls,
                callers,
                shutdown_signal(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        ProviderCommand::Org(OrgCommand::Add {
            db,
            id,
            name,
            token_file,
        }) => {
            let store = ProviderDb::open(&db).await?;
            let token = add_organisation(&store, &id, &name).await?;
            store.close()?;
            if let Some(path) = token_file {
                write_token(&path, &token)?;
            }
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        ProviderCommand::Org(OrgCommand::Disable { db, id }) => set_disabled(&db, &id, true).await,
        ProviderCommand::Org(OrgCommand::Enable { db, id }) => set_disabled(&db, &id, false).await,
        ProviderCommand::Org(OrgCommand::RevokeCert {
            db,
            cert,
            public_key_sha256,
            org,
            reason,
        }) => {
            let (org, sha256) = match (cert, public_key_sha256, org) {
                (Some(path), _, org) => {
                    let certs = myna_tls::certificates(&path)?;
                    let [der] = certs.as_slice() else {
                        bail!("{} must hold exactly one certificate", path.display());
                    };
                    let facts = myna_tls::identity::certificate_facts(der)
                        .with_context(|| format!("{} does not parse", path.display()))?;
                    let named = facts
                        .common_name
                        .with_context(|| format!("{} names no organisation", path.display()))?;
                    if org.as_ref().is_some_and(|o| *o != named) {
                        bail!("{} names {named:?}, not {org:?}", path.display());
                    }
                    (named, hex::encode(facts.public_key_sha256))
                }
                (None, Some(sha256), Some(org)) => {
                    let sha256 = sha256.trim().replace(':', "").to_ascii_lowercase();
                    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                        bail!("--public-key-sha256 must be 64 hex digits");
                    }
                    (org, sha256)
                }
                _ => bail!("give --cert, or --public-key-sha256 with --org"),
            };
            let store = ProviderDb::open(&db).await?;
            let found = store
                .revoke_organisation_certificate(&org, &sha256, &reason)
                .await?;
            store.close()?;
            if !found {
                bail!("no organisation {org:?} in {db}");
            }
            println!("{org}: key {sha256} revoked (every certificate for it)");
            Ok(ExitCode::SUCCESS)
        }
        ProviderCommand::Revoke { db, serial, reason } => {
            // Normalise as validation does, or a typed `01:ab:…` would revoke nothing.
            let serial = myna_pki::parse_serial(&serial)?;
            let store = ProviderDb::open(&db).await?;
            store.revoke_serial(&serial, &reason).await?;
            store.close()?;
            println!("revoked {serial}");
            Ok(ExitCode::SUCCESS)
        }
        ProviderCommand::ClaimsThrough { db, date } => {
            let today = chrono::Utc::now()
                .with_timezone(&myna_domain::stats::JST)
                .date_naive();
            if date > today {
                bail!("claims cannot be complete through {date}, after today ({today})");
            }
            let store =
                ProviderDb::open_existing(&db, "; run `myna-kyukyu gen` or `import` first").await?;
            // The date it replaces, or why that cannot be read (a stored date this repairs).
            let before = match store.dataset_info().await {
                Ok(info) => info
                    .claims_through
                    .map_or_else(|| "unknown".to_owned(), |d| d.to_string()),
                Err(e) => format!("unreadable: {e}"),
            };
            store.set_claims_through(date).await?;
            store.close()?;
            println!("claims through {date} (was {before})");
            Ok(ExitCode::SUCCESS)
        }
        ProviderCommand::Query(q) => query(q).await,
        ProviderCommand::Shard { db, nodes } => {
            let layout = myna_store_postgres::sharded::shard_provider(&db, &nodes).await?;
            print_layout(&db, &layout);
            Ok(ExitCode::SUCCESS)
        }
        ProviderCommand::Nodes { db } => {
            let layout = myna_store_postgres::sharded::layout(&db).await?;
            print_layout(&db, &layout);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A PostgreSQL URL; a file name is refused here, as data nodes exist only on PostgreSQL.
fn postgres_url(s: &str) -> Result<String, String> {
    match s.parse::<DbTarget>() {
        Ok(DbTarget::Postgres(url)) => Ok(url),
        _ => Err(format!(
            "{s:?} is not a PostgreSQL URL (postgres://user@host:port/db): data nodes exist \
             only on PostgreSQL"
        )),
    }
}

fn print_layout(db: &str, layout: &[myna_store_postgres::sharded::Shard]) {
    let db = myna_store_postgres::redacted(db);
    if layout.is_empty() {
        println!("{db}: one node (not sharded)");
        return;
    }
    println!("{db}: coordinator of {} data nodes", layout.len());
    for s in layout {
        println!(
            "  hash(person) mod {} = {}: {} ({})",
            s.modulus, s.remainder, s.address, s.server
        );
    }
}

async fn set_disabled(db: &DbTarget, id: &str, disabled: bool) -> Result<ExitCode> {
    let store = ProviderDb::open(db).await?;
    let found = store.set_organisation_disabled(id, disabled).await?;
    store.close()?;
    if !found {
        bail!("no organisation {id:?} in {db}");
    }
    println!("{id} {}", if disabled { "disabled" } else { "enabled" });
    Ok(ExitCode::SUCCESS)
}

pub async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// The alert table with every YJ code of the shipped drug master classified once, at start,
/// so a summary looks its drugs' classes up.
pub fn alert_table() -> Result<AlertTable> {
    let mut table = AlertTable::builtin()?;
    let master = myna_drug_master::Master::shared()?;
    table.classify_codes(master.yj_codes());
    tracing::debug!(
        codes = table.classified_codes(),
        version = table.version,
        "alert table classified the drug master"
    );
    Ok(table)
}

/// Serves the provider API on `listener` until `shutdown` completes.
/// The card CA the provider trusts, from its DER file.
pub fn trust_anchor(ca_cert: &Path) -> Result<TrustAnchor> {
    let der = std::fs::read(ca_cert)
        .with_context(|| format!("reading the trusted CA {}", ca_cert.display()))?;
    TrustAnchor::from_der(&der)
        .with_context(|| format!("reading the trusted CA {}", ca_cert.display()))
}

pub async fn serve(
    store: Arc<ProviderDb>,
    anchor: TrustAnchor,
    listener: tokio::net::TcpListener,
    checkpoints: &crate::checkpoint::CheckpointArgs,
    tls: Option<Arc<myna_tls::rustls::ServerConfig>>,
    callers: Callers,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    crate::tls::check_listener(&listener, tls.as_ref())?;
    let signing = crate::checkpoint::spawn(
        checkpoints,
        crate::checkpoint::ChainStore::Provider(store.clone()),
    )?;
    let recovering = tokio::spawn(recover_spanning_writes(store.clone()));
    let app = router(Provider {
        store,
        auth: callers,
        anchor,
        alerts: alert_table()?,
        clock: system_clock(),
    });
    let served = myna_web::serve::serve(listener, app, Default::default(), tls, shutdown)
        .await
        .context("provider server");
    if let Some(task) = signing {
        task.abort();
    }
    recovering.abort();
    served
}

/// How often a serving provider on several PostgreSQL nodes resolves the writes a crashed
/// loader left prepared on them. Until then those persons' rows stay locked on their node.
const RECOVERY_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Resolves cut-short writes that spanned data nodes while the service runs; nothing to do on
/// SQLite or one PostgreSQL node.
async fn recover_spanning_writes(store: Arc<ProviderDb>) {
    let ProviderDb::Postgres(pg) = &*store else {
        return;
    };
    let mut tick = tokio::time::interval(RECOVERY_EVERY);
    loop {
        tick.tick().await;
        // A data node that was down at start gets its migrations once it is back.
        pg.migrate_nodes().await;
        if let Err(e) = pg.recover_spanning_writes().await {
            tracing::error!(error = %e, "prepared writes on the data nodes not resolved");
        }
    }
}

pub async fn add_organisation<S: ProviderStore>(store: &S, id: &str, name: &str) -> Result<String> {
    myna_domain::access::check_identifier("organisation id", id)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if id.contains('.') {
        bail!("organisation id must not contain '.'");
    }
    let secret: [u8; 32] = rand::random();
    let secret = hex_encode(&secret);
    store
        .add_organisation(
            Organisation {
                id: id.into(),
                name: name.into(),
            },
            hash_secret(&secret),
        )
        .await?;
    Ok(BearerTokens::token(id, &secret))
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes a credential to a file readable by its owner only.
pub fn write_token(path: &Path, token: &str) -> Result<()> {
    crate::secret_file::write(path, token.as_bytes())
}

pub fn read_token(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_owned())
}

/// The organisation id a client certificate names (its common name).
pub fn identity_organisation(identity: &Path) -> Result<String> {
    let certs = myna_tls::certificates(identity)?;
    certs
        .first()
        .and_then(|c| myna_tls::identity::subject_common_name(c))
        .with_context(|| {
            format!(
                "{}: the certificate names no organisation",
                identity.display()
            )
        })
}

fn consent_from(exception: Option<&str>) -> Result<Consent> {
    match exception {
        None => Ok(Consent::Obtained),
        Some(r) => match ExceptionReason::parse(r) {
            Some(reason) => Ok(Consent::Exception { reason }),
            None => bail!(
                "unknown exception reason {r:?}; use unconscious, altered_consciousness or unable_to_communicate"
            ),
        },
    }
}

async fn query(q: QueryArgs) -> Result<ExitCode> {
    let (client, org) = match &q.identity {
        Some(identity) => {
            let tls = crate::tls::client_identity(q.tls_ca.as_deref(), identity, identity)?;
            (
                ProviderClient::with_client_certificate(&q.url, tls)?,
                identity_organisation(identity)?,
            )
        }
        None => {
            let token = read_token(&q.token_file)?;
            let org = token
                .split_once('.')
                .map(|(o, _)| o.to_owned())
                .unwrap_or_default();
            let tls = crate::tls::client_roots(q.tls_ca.as_deref())?;
            (ProviderClient::with_tls(&q.url, &token, tls)?, org)
        }
    };
    let cert = std::fs::read(&q.cert).with_context(|| format!("reading {}", q.cert.display()))?;
    let body = ProviderClient::summary_body(
        &cert,
        consent_from(q.exception.as_deref())?,
        &q.incident,
        ViewerBody {
            organisation: org,
            team: q.team,
            crew_member: q.crew,
        },
    );
    let view = if q.full { View::Full } else { View::Summary };
    match client.summary(&body, view).await? {
        SummaryOutcome::Ok(resp) => {
            if q.json {
                println!("{}", serde_json::to_string_pretty(&*resp)?);
            } else {
                print!("{}", crate::render::summary_text(&resp.summary));
                println!("  閲覧記録 #{}", resp.access_id);
            }
            Ok(ExitCode::SUCCESS)
        }
        SummaryOutcome::Refused {
            status,
            code,
            message,
        } => {
            eprintln!("refused ({status}): {code}: {message}");
            Ok(ExitCode::from(3))
        }
    }
}
