//! Signing in, hardened against floods and guessing.
//! - Password hashing runs on bounded pools of its own, never on the blocking threads the store
//!   uses: a flood of sign-ins costs at most `hash_workers` argon2 computations (19 MiB each)
//!   at a time, and what does not fit in the queue is answered `busy` at once. The crew's
//!   tablets (registered devices) have a pool of their own, so a flood of the open desk
//!   sign-in page cannot keep a crew from signing in.
//! - Attempts are rate-limited before any hashing: per client address on the open page (an
//!   IPv6 address by its /64), and per account on each path (the desk's page; a tablet and
//!   the login typed on it), so one path cannot starve another.
//! - Failed sign-ins in a row lock the account (`LockoutPolicy`) until the lock ends, an admin
//!   clears it (admin page, `ems unlock`) or its password is reset. Only a path that accepts
//!   the account's role counts: guessing a crew member's password on the desk's page neither
//!   reaches it nor locks it.
//! - Known limit: a lock answers `account_locked`, which tells a guesser the login exists
//!   (unknown logins never lock). The desk logins are predictable anyway; see
//!   `docs/security.md`.

use crate::Ems;
use crate::error::EmsError;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock as _};
use myna_store::ems::{Account, Bureau, EmsStore, LockoutPolicy, Role};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// How sign-in is throttled. The defaults let a person who mistypes twice go on, and make
/// guessing one account cost hours.
#[derive(Debug, Clone, Copy)]
pub struct SignInPolicy {
    /// Attempts from one client address: a burst, then one more every `per_ip_every`.
    pub per_ip_burst: u32,
    pub per_ip_every: Duration,
    /// Attempts on one account (bureau and login, known or not): a burst, then one more
    /// every `per_account_every`.
    pub per_account_burst: u32,
    pub per_account_every: Duration,
    pub lockout: LockoutPolicy,
    /// argon2 computations at once for the open sign-in page (each takes 19 MiB) and jobs
    /// waiting for one. The tablets' pool has one worker and its own queue.
    pub hash_workers: usize,
    pub hash_queue: usize,
}

/// Longest bureau code and login looked at: anything longer is refused before it becomes a
/// rate-limit key.
const MAX_CODE_CHARS: usize = 32;
const MAX_LOGIN_CHARS: usize = 64;

/// Rate-limit entries kept before idle ones are dropped early (a spray of logins or
/// addresses cannot grow memory for ever).
const MAX_LIMITER_KEYS: usize = 100_000;

impl Default for SignInPolicy {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let hash_workers = (cores / 2).max(1);
        Self {
            per_ip_burst: 30,
            per_ip_every: Duration::from_secs(2),
            per_account_burst: 5,
            per_account_every: Duration::from_secs(12),
            lockout: LockoutPolicy {
                lock_after: 10,
                lock_ms: 15 * 60 * 1000,
            },
            hash_workers,
            hash_queue: 8 * hash_workers,
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that hash and verify passwords, with a bounded queue.
pub struct PasswordPool {
    jobs: mpsc::SyncSender<Job>,
    workers: usize,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl PasswordPool {
    pub fn new(workers: usize, queue: usize) -> Self {
        let (jobs, rx) = mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ems-password-{i}"))
                .spawn(move || {
                    loop {
                        // One worker waits on the queue at a time; the lock is released as soon
                        // as it has its job.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            // A panicking job must not take its worker with it.
                            Ok(job) => {
                                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
                                    .is_err()
                                {
                                    tracing::error!("a password job panicked");
                                }
                            }
                            Err(_) => return,
                        }
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "a password worker could not start"),
            }
        }
        Self {
            jobs,
            workers: started,
            running: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The most computations that ever ran at once (for tests and the operator's log).
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, EmsError> {
        if self.workers == 0 {
            return Err(EmsError::Busy);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (running, peak) = (self.running.clone(), self.peak.clone());
        let job: Job = Box::new(move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let out = f();
            running.fetch_sub(1, Ordering::SeqCst);
            // The caller may have gone (its connection closed): nothing to answer.
            let _ = tx.send(out);
        });
        self.jobs.try_send(job).map_err(|_| EmsError::Busy)?;
        rx.await.map_err(|_| EmsError::Busy)
    }

    /// Whether `password` matches the stored PHC string.
    pub async fn verify(&self, password: String, stored: String) -> Result<bool, EmsError> {
        self.run(move || {
            let password = zeroize::Zeroizing::new(password);
            crate::auth::password_matches(&password, &stored)
        })
        .await
    }

    /// A new argon2id PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String, EmsError> {
        self.run(move || {
            let password = zeroize::Zeroizing::new(password);
            crate::auth::hash_password(&password)
        })
        .await?
    }
}

/// Where an attempt is counted: the open page, or one tablet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Path {
    Browser,
    Terminal(i64),
}

/// The pools and the rate limiters of one `ems` process.
pub struct SignInGuard {
    pub policy: SignInPolicy,
    /// The open sign-in page's pool; admin password resets use it too.
    pub browser_pool: PasswordPool,
    pub terminal_pool: PasswordPool,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_account: DefaultKeyedRateLimiter<(Path, String, String)>,
}

use myna_web::serve::address_key;

fn quota(burst: u32, every: Duration) -> Option<Quota> {
    Some(Quota::with_period(every)?.allow_burst(NonZeroU32::new(burst)?))
}

impl SignInGuard {
    pub fn new(policy: SignInPolicy) -> Self {
        // A zero burst or period is a configuration mistake; fall back to the defaults.
        let fallback = SignInPolicy::default();
        let ip = quota(policy.per_ip_burst, policy.per_ip_every)
            .or_else(|| quota(fallback.per_ip_burst, fallback.per_ip_every))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
        let account = quota(policy.per_account_burst, policy.per_account_every)
            .or_else(|| quota(fallback.per_account_burst, fallback.per_account_every))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
        Self {
            policy,
            browser_pool: PasswordPool::new(policy.hash_workers, policy.hash_queue),
            terminal_pool: PasswordPool::new(1, 8),
            per_ip: RateLimiter::keyed(ip),
            per_account: RateLimiter::keyed(account),
        }
    }

    fn refused(wait: Duration) -> EmsError {
        EmsError::TooManyAttempts {
            retry_after_s: wait.as_secs().max(1),
        }
    }

    pub(crate) fn check_ip(&self, ip: IpAddr) -> Result<(), EmsError> {
        if self.per_ip.len() > MAX_LIMITER_KEYS {
            self.per_ip.retain_recent();
        }
        self.per_ip
            .check_key(&address_key(ip))
            .map_err(|not_until| {
                Self::refused(
                    not_until.wait_time_from(governor::clock::DefaultClock::default().now()),
                )
            })
    }

    fn check_account(&self, path: Path, bureau_code: &str, login: &str) -> Result<(), EmsError> {
        if self.per_account.len() > MAX_LIMITER_KEYS {
            self.per_account.retain_recent();
        }
        let key = (path, bureau_code.to_lowercase(), login.to_owned());
        self.per_account.check_key(&key).map_err(|not_until| {
            Self::refused(not_until.wait_time_from(governor::clock::DefaultClock::default().now()))
        })
    }

    /// Forgets limiter entries that are full again, so spraying logins cannot grow memory
    /// for ever (the purge task calls this).
    pub fn forget_idle(&self) {
        self.per_ip.retain_recent();
        self.per_account.retain_recent();
        self.per_ip.shrink_to_fit();
        self.per_account.shrink_to_fit();
    }
}

/// The client's address as the listener saw it; `None` in-process (tests), which then share
/// one bucket.
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// Where a sign-in comes from: the desk's open page (limited per address too) or a
/// registered tablet (by its id), which already proved its credential.
#[derive(Debug, Clone, Copy)]
pub enum SignInFrom {
    Browser(Option<IpAddr>),
    Terminal(i64),
}

impl<S: EmsStore> Ems<S> {
    /// The account of `bureau` named `login`, if `password` is its password, it is enabled,
    /// not locked, and its role is one of `roles`. A wrong password counts towards the lock;
    /// an unknown login costs the same argon2 verification as a wrong password.
    pub async fn sign_in(
        &self,
        from: SignInFrom,
        bureau_code: &str,
        bureau: Option<&Bureau>,
        login: &str,
        password: String,
        roles: &[Role],
    ) -> Result<Account, EmsError> {
        let guard = &self.sign_in_guard;
        let (path, pool) = match from {
            SignInFrom::Browser(ip) => {
                guard.check_ip(ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))?;
                (Path::Browser, &guard.browser_pool)
            }
            SignInFrom::Terminal(id) => (Path::Terminal(id), &guard.terminal_pool),
        };
        if bureau_code.chars().count() > MAX_CODE_CHARS || login.chars().count() > MAX_LOGIN_CHARS {
            return Err(EmsError::BadCredentials);
        }
        guard.check_account(path, bureau_code, login)?;
        // An account this path does not serve (a crew member on the desk's page, a disabled
        // one) is treated as unknown: verified against the dummy, never counted or locked.
        let account = match bureau {
            Some(b) => self.store.account(b.id, login).await?,
            None => None,
        }
        .filter(|a| !a.disabled && roles.contains(&a.role));
        let now_ms = self.now_ms();
        if let Some(a) = &account
            && a.is_locked(now_ms)
        {
            return Err(EmsError::AccountLocked {
                until_ms: a.locked_until_ms.unwrap_or(now_ms),
            });
        }
        let stored = account
            .as_ref()
            .map_or(crate::auth::dummy_hash(), |a| a.password_hash.as_str())
            .to_owned();
        let matches = pool.verify(password, stored).await?;
        let Some(account) = account else {
            return Err(EmsError::BadCredentials);
        };
        if !matches {
            let after = self
                .store
                .sign_in_failed(account.bureau_id, account.id, now_ms, guard.policy.lockout)
                .await?;
            return match after.and_then(|a| a.locked_until_ms.filter(|u| *u > now_ms)) {
                Some(until_ms) => {
                    tracing::warn!(login, bureau = bureau_code, "account locked after failures");
                    Err(EmsError::AccountLocked { until_ms })
                }
                None => Err(EmsError::BadCredentials),
            };
        }
        // A guess that raced this sign-in may have locked the account meanwhile.
        if !self
            .store
            .sign_in_succeeded(account.bureau_id, account.id, now_ms)
            .await?
        {
            return Err(EmsError::AccountLocked {
                until_ms: now_ms.saturating_add(guard.policy.lockout.lock_ms),
            });
        }
        Ok(account)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn the_pool_runs_at_most_its_workers_and_answers_busy_past_its_queue() {
        let pool = Arc::new(PasswordPool::new(1, 2));
        let hash = crate::auth::hash_password("correct horse").unwrap();
        let tries: Vec<_> = (0..12)
            .map(|_| {
                let (pool, hash) = (pool.clone(), hash.clone());
                tokio::spawn(async move { pool.verify("correct horse".into(), hash).await })
            })
            .collect();
        let mut done = 0;
        let mut busy = 0;
        for t in tries {
            match t.await.unwrap() {
                Ok(true) => done += 1,
                Err(EmsError::Busy) => busy += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(pool.peak(), 1, "one worker: never two hashes at once");
        assert!(
            busy > 0,
            "twelve at once do not fit one worker and two places"
        );
        assert!(done >= 1, "the pool verified some");
    }

    #[test]
    fn a_zero_quota_falls_back_to_the_default() {
        let guard = SignInGuard::new(SignInPolicy {
            per_ip_burst: 0,
            per_account_every: Duration::ZERO,
            ..SignInPolicy::default()
        });
        // The default bursts (30 and 5), not a one-per-second last resort.
        let defaults = SignInPolicy::default();
        for _ in 0..defaults.per_ip_burst {
            assert!(guard.check_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)).is_ok());
        }
        for _ in 0..defaults.per_account_burst {
            assert!(guard.check_account(Path::Browser, "a-fd", "crew01").is_ok());
        }
        assert!(
            guard
                .check_account(Path::Browser, "a-fd", "crew01")
                .is_err()
        );
    }

    #[test]
    fn an_ipv6_client_is_one_key_for_its_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let guard = SignInGuard::new(SignInPolicy {
            per_ip_burst: 1,
            per_ip_every: Duration::from_secs(3600),
            ..SignInPolicy::default()
        });
        assert!(guard.check_ip(a).is_ok());
        assert!(
            guard.check_ip(b).is_err(),
            "another address of the same /64"
        );
        assert!(guard.check_ip(c).is_ok());
    }

    #[test]
    fn an_account_past_its_burst_waits_and_others_do_not() {
        let guard = SignInGuard::new(SignInPolicy {
            per_account_burst: 2,
            per_account_every: Duration::from_secs(60),
            ..SignInPolicy::default()
        });
        assert!(guard.check_account(Path::Browser, "a-fd", "crew01").is_ok());
        assert!(guard.check_account(Path::Browser, "A-FD", "crew01").is_ok());
        match guard.check_account(Path::Browser, "a-fd", "crew01") {
            Err(EmsError::TooManyAttempts { retry_after_s }) => {
                assert!((1..=60).contains(&retry_after_s))
            }
            other => panic!("a third attempt went through: {other:?}"),
        }
        assert!(guard.check_account(Path::Browser, "a-fd", "crew02").is_ok());
        assert!(guard.check_account(Path::Browser, "b-fd", "crew01").is_ok());
        assert!(
            guard
                .check_account(Path::Terminal(7), "a-fd", "crew01")
                .is_ok(),
            "the page's guesses do not starve a tablet"
        );
    }
}
