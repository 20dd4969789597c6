//! `ems`: the fire bureau's service. It holds tenants (bureaus, stations, teams, accounts,
//! terminals) and incidents as append-only event logs, pushes changes to the assigned team's
//! terminal, asks the provider for summaries with the bureau's credential under the viewing
//! rule, and keeps its own hash-chained audit of every view. It serves the dispatcher's UI.
//!
//! HTTP only; the rules live in `myna_domain::incident` and the storage behind
//! `myna_store::ems::EmsStore`.

mod api;
pub mod auth;
mod dispatch;
pub mod enroll;
pub mod error;
mod hospital;
pub mod openapi;
mod public;
pub mod relay;
mod review;
pub mod seed;
pub mod sign_in;
pub mod stats;
pub mod wire;

use axum::Router;
use chrono::{DateTime, Utc};
use myna_provider::client::ProviderClient;
use myna_store::ems::{Bureau, BureauId, EmsStore, IncidentId, TeamId};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

pub use error::EmsError;

/// Source of "now", replaceable in tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Largest request body accepted (a summary request with a 2 KiB certificate is under 4 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a crew member's sign-in lasts: one shift.
pub const CREW_SHIFT: chrono::Duration = chrono::Duration::hours(24);
/// How long a dispatcher's or admin's browser session lasts.
pub const DESK_SESSION: chrono::Duration = chrono::Duration::hours(12);

/// Shortest password an admin may set.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// The date in Japan (UTC+9) at `t`: a report's date.
pub fn jst_date(t: DateTime<Utc>) -> (i32, u8, u8) {
    use chrono::Datelike;
    let d = (t + chrono::Duration::hours(9)).date_naive();
    (
        d.year(),
        u8::try_from(d.month()).unwrap_or(1),
        u8::try_from(d.day()).unwrap_or(1),
    )
}

/// Something changed in an incident; terminals of `teams` and the bureau's desks are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub bureau: BureauId,
    pub incident: IncidentId,
    /// The assigned team, and the previous one after a reassignment.
    pub teams: Vec<TeamId>,
}

/// `Ems::stream_recheck` unless the operator chose another.
pub const DEFAULT_STREAM_RECHECK: Duration = Duration::from_secs(10);

/// What the push streams of this process are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    Changed(Change),
    /// Changes may have been missed (another process's feed was down): every screen and
    /// tablet refreshes what it shows, as after a lagged channel.
    Resync,
}

pub struct Ems<S> {
    pub store: Arc<S>,
    pub clock: Clock,
    changes: broadcast::Sender<Push>,
    /// Per bureau: the provider URL and the SHA-256 of the credential the client was made
    /// with, and the client. A rotated credential replaces the bureau's entry.
    providers: Mutex<HashMap<BureauId, (String, String, ProviderClient)>>,
    /// Upper bound on one provider call, so a dead link fails plainly instead of hanging.
    pub provider_timeout: Duration,
    /// The age past which a hospital's acceptance status is shown as stale and ranked lower
    /// (the criteria table's, unless the bureau sets its own: `ems serve
    /// --status-stale-minutes`). Sent to the tablets with the statuses.
    pub status_stale_after_minutes: i64,
    /// Days after which an exception view still waiting for the privacy officer's decision is
    /// highlighted on the review queue (`ems serve --review-due-days`).
    pub review_due_days: i64,
    /// The password pool and the sign-in rate limits (`sign_in`).
    pub sign_in_guard: sign_in::SignInGuard,
    /// Whom ems trusts when it calls a provider over `https://`; the platform's roots when
    /// `None` (`ems serve --provider-ca` names a private CA).
    pub provider_tls: Option<Arc<myna_tls::rustls::ClientConfig>>,
    /// The CA file behind `provider_tls`, for the bureaus whose credential is a client
    /// certificate (their configurations carry it).
    pub provider_ca: Option<std::path::PathBuf>,
    /// Served over TLS: the session cookie is `Secure` and `__Host-` prefixed.
    pub tls: bool,
    /// The `Host` values ems answers to; `None` answers any (in-process tests).
    pub allowed_hosts: Option<Arc<myna_web::security::AllowedHosts>>,
    /// The bureau's device CA. With it, tablets enroll and prove themselves by the client
    /// certificate it issued (mutual TLS) and bearer tokens are refused; without it (loopback
    /// deployments, tests) the terminal's credential is a bearer token.
    pub device_ca: Option<Arc<enroll::DeviceCa>>,
    pub enrollment_limits: myna_store::ems::EnrollmentLimits,
    /// How often an open push stream (tablet, desk, hospital) checks that its credential still
    /// holds: this catches an ended shift, a sign-out, or a revocation whose note was lost.
    pub stream_recheck: Duration,
    /// Terminals revoked (on the admin page, by `ems terminal revoke`, or in another process
    /// on the database): their open push streams end at once.
    revocations: broadcast::Sender<(BureauId, myna_store::ems::TerminalId)>,
    /// This process among those sharing the database: its own published changes come back
    /// through the feed and are not told twice.
    origin: u64,
    /// Wakes the relay (`relay`) when a hospital's read is queued for the provider.
    pub(crate) hospital_reads: tokio::sync::Notify,
}

impl<S: EmsStore> Ems<S> {
    pub fn new(store: Arc<S>, clock: Clock) -> Self {
        let (changes, _) = broadcast::channel(1024);
        let (revocations, _) = broadcast::channel(64);
        Self {
            store,
            clock,
            changes,
            providers: Mutex::new(HashMap::new()),
            provider_timeout: Duration::from_secs(10),
            status_stale_after_minutes: myna_domain::hospitals::Criteria::shared()
                .map_or(120, |c| c.costs.stale_after_minutes),
            sign_in_guard: sign_in::SignInGuard::new(sign_in::SignInPolicy::default()),
            review_due_days: 14,
            provider_tls: None,
            provider_ca: None,
            tls: false,
            allowed_hosts: None,
            device_ca: None,
            enrollment_limits: myna_store::ems::EnrollmentLimits::default(),
            stream_recheck: DEFAULT_STREAM_RECHECK,
            revocations,
            origin: myna_web::random_u64(),
            hospital_reads: tokio::sync::Notify::new(),
        }
    }

    /// Follows the changes other ems processes on the same database publish and tells this
    /// process's push streams, for as long as the service runs; a failed feed is followed again
    /// after a second, and once it listens again every stream resyncs (notes sent while it
    /// was down are lost). With a store one process holds alone it ends at once.
    pub fn follow_other_processes(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let (changes, revocations, origin) =
            (self.changes.clone(), self.revocations.clone(), self.origin);
        tokio::spawn(async move {
            loop {
                let (changes, revocations) = (changes.clone(), revocations.clone());
                let deliver: myna_store::ems::ChangeSink = Arc::new(move |feed| {
                    use myna_store::ems::{Changed, Feed};
                    // No receiver is not an error: nobody is watching.
                    match feed {
                        Feed::Listening => {
                            let _ = changes.send(Push::Resync);
                        }
                        Feed::Note(note) if note.origin == origin => {}
                        Feed::Note(note) => match note.what {
                            Changed::Incident { incident, teams } => {
                                let _ = changes.send(Push::Changed(Change {
                                    bureau: note.bureau,
                                    incident,
                                    teams,
                                }));
                            }
                            Changed::TerminalRevoked(terminal) => {
                                let _ = revocations.send((note.bureau, terminal));
                            }
                        },
                    }
                });
                match store.follow_changes(deliver).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "the change feed failed; following it again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    }

    /// The browser session cookie's name (`auth::SECURE_SESSION_COOKIE` under TLS).
    pub fn session_cookie_name(&self) -> &'static str {
        if self.tls {
            auth::SECURE_SESSION_COOKIE
        } else {
            auth::SESSION_COOKIE
        }
    }

    /// The same service with another sign-in policy (a bureau's own, or a test's).
    pub fn with_sign_in_policy(mut self, policy: sign_in::SignInPolicy) -> Self {
        self.sign_in_guard = sign_in::SignInGuard::new(policy);
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Push> {
        self.changes.subscribe()
    }

    pub fn subscribe_revocations(
        &self,
    ) -> broadcast::Receiver<(BureauId, myna_store::ems::TerminalId)> {
        self.revocations.subscribe()
    }

    /// Revokes a terminal of the bureau and ends its push streams now, in this process and in
    /// the others on the database (a stream also re-checks its credential every
    /// `stream_recheck`, which catches a revocation whose note was lost).
    pub async fn revoke_terminal(
        &self,
        bureau: BureauId,
        terminal: myna_store::ems::TerminalId,
    ) -> Result<bool, EmsError> {
        let revoked = self.store.revoke_terminal(bureau, terminal).await?;
        if revoked {
            let _ = self.revocations.send((bureau, terminal));
            self.publish(bureau, myna_store::ems::Changed::TerminalRevoked(terminal));
        }
        Ok(revoked)
    }

    pub(crate) fn notify(&self, change: Change) {
        self.publish(
            change.bureau,
            myna_store::ems::Changed::Incident {
                incident: change.incident,
                teams: change.teams.clone(),
            },
        );
        // No receiver is not an error: nobody is watching.
        let _ = self.changes.send(Push::Changed(change));
    }

    /// Tells the other processes on the database (a no-op for a store one process holds).
    fn publish(&self, bureau: BureauId, what: myna_store::ems::Changed) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            let note = myna_store::ems::ChangeNote {
                origin: self.origin,
                bureau,
                what,
            };
            runtime.spawn(async move { store.publish_change(note).await });
        }
    }

    /// Appends an event a browser user (the desk, a hospital's staff) records, under a fresh
    /// key, and tells the teams the incident was assigned to before and after it.
    pub(crate) async fn record(
        &self,
        bureau: BureauId,
        incident: IncidentId,
        kind: myna_domain::incident::EventKind,
        actor: myna_domain::incident::Actor,
    ) -> Result<(), EmsError> {
        let before = self
            .store
            .incident(bureau, incident)
            .await?
            .ok_or(EmsError::IncidentNotFound)?;
        let mut teams: Vec<TeamId> = before.log.assigned_team().into_iter().collect();
        if let myna_domain::incident::EventKind::Assigned { team } = &kind {
            teams.insert(0, *team);
        }
        let appended = self
            .store
            .append(
                bureau,
                incident,
                myna_store::ems::NewEvent {
                    kind,
                    actor,
                    idempotency_key: myna_web::random_token(),
                    device_at_ms: None,
                    team_guard: None,
                },
                self.now_ms(),
            )
            .await?;
        if matches!(appended, myna_store::ems::Appended::New(_)) {
            self.notify(Change {
                bureau,
                incident,
                teams,
            });
        }
        Ok(())
    }

    /// The bureau's provider client, reused across requests (it pools connections). The
    /// credential is read from the bureau's file on each call, so a rotated one takes effect
    /// at once.
    pub(crate) fn provider(&self, bureau: &Bureau) -> Result<ProviderClient, EmsError> {
        let file = Path::new(&bureau.provider_credential_file);
        let credential = read_credential(file).map_err(EmsError::ProviderUnavailable)?;
        let credential = zeroize::Zeroizing::new(credential);
        let fingerprint = myna_store::hash_secret(&credential);
        let url = bureau.provider_url.as_str();
        let make = || {
            let credential = credential.as_str();
            let unavailable = |e: String| EmsError::ProviderUnavailable(e);
            // A plain http:// provider on another host is refused (a database writer could
            // otherwise send the credential anywhere in clear).
            if is_client_identity(credential) {
                // The bureau's certificate and key (PEM, one file): mutual TLS.
                let roots = match &self.provider_ca {
                    Some(ca) => myna_tls::Roots::File(ca.clone()),
                    None => myna_tls::Roots::Platform,
                };
                let identity = myna_tls::ClientIdentity {
                    cert: file.to_owned(),
                    key: file.to_owned(),
                };
                let tls = myna_tls::client_config(&roots, Some(&identity))
                    .map_err(|e| unavailable(e.to_string()))?;
                ProviderClient::with_client_certificate(url, tls)
                    .map_err(|e| unavailable(format!("{e:#}")))
            } else {
                let tls = match &self.provider_tls {
                    Some(c) => c.clone(),
                    None => myna_tls::platform_client_config()
                        .map_err(|e| unavailable(e.to_string()))?,
                };
                ProviderClient::with_tls(url, credential, tls)
                    .map_err(|e| unavailable(format!("{e:#}")))
            }
        };
        match self.providers.lock() {
            Ok(mut map) => {
                if let Some((u, f, c)) = map.get(&bureau.id)
                    && u == url
                    && *f == fingerprint
                {
                    return Ok(c.clone());
                }
                let client = make()?;
                map.insert(bureau.id, (url.to_owned(), fingerprint, client.clone()));
                Ok(client)
            }
            Err(_) => make(),
        }
    }
}

/// A provider credential file holding a certificate and its private key (PEM) is a client
/// identity for mutual TLS; anything else is a bearer token.
pub fn is_client_identity(credential: &str) -> bool {
    credential.contains("-----BEGIN CERTIFICATE-----") && credential.contains("PRIVATE KEY-----")
}

/// A credential from a file that only its owner may read (as `ssh` insists for keys): a file
/// others can read has already leaked, and is refused with the fix in the message.
pub fn read_credential(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("provider credential file {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(|e| format!("provider credential file {}: {e}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "provider credential file {} is readable by others (mode {:o}); run chmod 600",
                path.display(),
                mode & 0o777
            ));
        }
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut &file, &mut text)
        .map_err(|e| format!("provider credential file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!(
            "provider credential file {} is empty",
            path.display()
        ));
    }
    Ok(token.to_owned())
}

impl<S: EmsStore> Ems<S> {}

/// How often ems deletes the handoff copies no hospital may read any more.
pub const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Deletes expired handoff copies now and every `PURGE_EVERY`, for as long as the task runs,
/// and forgets idle sign-in rate-limit entries.
pub async fn purge_handoffs_forever<S: EmsStore>(ems: Arc<Ems<S>>) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    loop {
        tick.tick().await;
        ems.sign_in_guard.forget_idle();
        match ems.store.purge_handoffs(ems.now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(copies = n, "expired handoff copies deleted"),
            Err(e) => tracing::warn!(error = %e, "purging handoff copies failed"),
        }
    }
}

/// The push script of the desk and the hospital screen.
const EMS_JS: &str = include_str!("../assets/ems.js");

/// All of `ems`'s routes: the terminal API, the desk UI and the static files.
pub fn router<S: EmsStore>(ems: Arc<Ems<S>>) -> Router {
    let cookie = ems.session_cookie_name();
    let hosts = ems.allowed_hosts.clone();
    let app = Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .merge(api::routes())
        .merge(enroll::routes())
        .merge(
            // The browser screens: every form carries its session's token and comes from
            // our own origin.
            dispatch::routes()
                .merge(stats::routes())
                .merge(review::routes())
                .merge(hospital::routes())
                .layer(axum::middleware::from_fn(|req, next| {
                    myna_web::csrf::guard(cookie, "/login", req, next)
                })),
        )
        .merge(public::routes())
        .merge(myna_web::static_routes())
        .route(
            "/static/ems.js",
            axum::routing::get(|| async {
                myna_web::asset(EMS_JS, "text/javascript; charset=utf-8")
            }),
        )
        .layer(axum::middleware::from_fn(myna_web::security::layer))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(ems);
    match hosts {
        Some(h) => app.layer(axum::middleware::from_fn(move |req, next| {
            myna_web::security::host_guard(h.clone(), req, next)
        })),
        None => app,
    }
}
