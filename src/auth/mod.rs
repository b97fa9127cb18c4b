//! Authentication for every front: one [`Authenticator`] checks the credentials of gRPC
//! calls, legacy JSON requests, CometD handshakes and WebSocket upgrades, so a password
//! check is bounded, cached and throttled the same way whichever door it comes through.
//!
//! A check goes like this:
//!
//! 1. An address that is locked out (too many recent failures from it, see [`throttle`]) is
//!    refused at once: [`CoreError::Throttled`].
//! 2. A clear secret (demo configurations), an unknown user name, or credentials whose hash
//!    check passed less than `auth.verified_ttl_s` ago ([`verified`]) are decided without a
//!    hash check, on the calling task. This is the path of every request after a client's
//!    first, and no throttle of a *user name* ever delays it: an attacker hammering
//!    `agent1` with wrong passwords does not make the real agent1 wait.
//! 3. Otherwise an argon2 check is needed (tens of milliseconds of CPU, 19 MiB). A user name
//!    that is locked out is refused at once ([`CoreError::Throttled`]). Otherwise the request
//!    waits for one of `auth.max_concurrent_checks` slots (default: the number of cores, at
//!    most 4) for
//!    at most `auth.check_wait_ms`, then is refused ([`CoreError::Busy`]); with a slot, the
//!    check runs on tokio's blocking pool, never on an async worker. However many requests
//!    arrive, at most that many checks (and their memory) exist at once.
//!
//! How each front says it (the choice the issue left open): a full pool is a transient,
//! server-side condition, so gRPC `UNAVAILABLE` and HTTP `503` with `Retry-After: 1`
//! (statusCode 4); a throttled sign-in is the client's own doing and lasts a stated time, so
//! gRPC `RESOURCE_EXHAUSTED` and HTTP `429` with `Retry-After` (statusCode 3). gRPC replies
//! carry the delay in the `grpc-retry-pushback-ms` trailer; a CometD handshake gets
//! `503::…` or `429::…` with advice `{"reconnect":"handshake","interval":ms}`.
//!
//! In bridge mode step 3 is a sign-in at the upstream GWS instead of an argon2 check (the
//! gateway holds no password): same slots, same wait, same throttle, same cache.
//!
//! The client address is the TCP peer ([`ClientAddr`], put in each request's extensions by
//! the HTTP listener; tonic's own listener reports it itself). Behind a load balancer every
//! client has the balancer's address; set `auth.max_failures_per_address = 0` there, or the
//! balancer's address gets locked out for everyone.

pub mod throttle;
pub mod verified;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::core::{
    CallControl, CoreError, CoreResult, Principal, Secret, invalid_password, invalid_token,
    user_principal,
};
use throttle::{Locked, Throttle, ThrottlePolicy};
use verified::{AccountKind, VerifiedCache};

/// The most argon2 checks run at once by default (see [`AuthConfig::concurrent_checks`]).
pub const DEFAULT_MAX_CHECKS: usize = 4;
/// Default wait for a credential-check slot, in milliseconds.
pub const DEFAULT_CHECK_WAIT_MS: u64 = 250;
/// Default failures for one user name before its attempts are delayed.
pub const DEFAULT_MAX_FAILURES: u32 = 10;
/// Default failures from one address before its attempts are delayed (higher than per
/// user: an office's desktops may share one address).
pub const DEFAULT_MAX_FAILURES_PER_ADDRESS: u32 = 100;
/// Default first lockout, in milliseconds; doubled per further failure.
pub const DEFAULT_LOCKOUT_MS: u64 = 1_000;
/// Default longest lockout, in milliseconds.
pub const DEFAULT_MAX_LOCKOUT_MS: u64 = 300_000;
/// Default quiet time after which a key's failures are forgotten, in milliseconds.
pub const DEFAULT_FAILURE_WINDOW_MS: u64 = 900_000;
/// Default number of client addresses whose failures are tracked.
pub const DEFAULT_TRACKED_ADDRESSES: usize = 65_536;
/// Default number of successful checks remembered.
pub const DEFAULT_VERIFIED_CACHE: usize = 4_096;
/// Default lifetime of a remembered check, in seconds.
pub const DEFAULT_VERIFIED_TTL_S: u64 = 3_600;
/// What a refused client is told to wait when every check slot is busy.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The `[auth]` table of the configuration.
///
/// | key | meaning | default |
/// |---|---|---|
/// | `max_concurrent_checks` | argon2 checks running at once; `0` = the number of cores, at most [`DEFAULT_MAX_CHECKS`] | `0` |
/// | `check_wait_ms` | how long a request waits for a check slot before 503 / UNAVAILABLE | [`DEFAULT_CHECK_WAIT_MS`] |
/// | `max_failures` | failures per user name before its attempts are delayed; `0` = off | [`DEFAULT_MAX_FAILURES`] |
/// | `max_failures_per_address` | failures per client address before its attempts are delayed; `0` = off | [`DEFAULT_MAX_FAILURES_PER_ADDRESS`] |
/// | `lockout_ms` | first delay, doubled per further failure | [`DEFAULT_LOCKOUT_MS`] |
/// | `max_lockout_ms` | longest delay | [`DEFAULT_MAX_LOCKOUT_MS`] |
/// | `failure_window_ms` | quiet time after which failures are forgotten | [`DEFAULT_FAILURE_WINDOW_MS`] |
/// | `tracked_addresses` | client addresses whose failures are remembered | [`DEFAULT_TRACKED_ADDRESSES`] |
/// | `verified_cache` | successful checks remembered | [`DEFAULT_VERIFIED_CACHE`] |
/// | `verified_ttl_s` | how long a successful check is remembered | [`DEFAULT_VERIFIED_TTL_S`] |
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Argon2 checks running at once; 0 = the number of cores, at most [`DEFAULT_MAX_CHECKS`].
    pub max_concurrent_checks: usize,
    /// Wait for a check slot, in milliseconds.
    pub check_wait_ms: u64,
    /// Failures per user name before its attempts are delayed; 0 = off.
    pub max_failures: u32,
    /// Failures per client address before its attempts are delayed; 0 = off.
    pub max_failures_per_address: u32,
    /// First lockout, in milliseconds.
    pub lockout_ms: u64,
    /// Longest lockout, in milliseconds.
    pub max_lockout_ms: u64,
    /// Quiet time after which failures are forgotten, in milliseconds.
    pub failure_window_ms: u64,
    /// Client addresses tracked.
    pub tracked_addresses: usize,
    /// Successful checks remembered.
    pub verified_cache: usize,
    /// Lifetime of a remembered check, in seconds.
    pub verified_ttl_s: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            max_concurrent_checks: 0,
            check_wait_ms: DEFAULT_CHECK_WAIT_MS,
            max_failures: DEFAULT_MAX_FAILURES,
            max_failures_per_address: DEFAULT_MAX_FAILURES_PER_ADDRESS,
            lockout_ms: DEFAULT_LOCKOUT_MS,
            max_lockout_ms: DEFAULT_MAX_LOCKOUT_MS,
            failure_window_ms: DEFAULT_FAILURE_WINDOW_MS,
            tracked_addresses: DEFAULT_TRACKED_ADDRESSES,
            verified_cache: DEFAULT_VERIFIED_CACHE,
            verified_ttl_s: DEFAULT_VERIFIED_TTL_S,
        }
    }
}

impl AuthConfig {
    /// Checks the values that have no meaning at zero; names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("auth.lockout_ms", self.lockout_ms),
            ("auth.failure_window_ms", self.failure_window_ms),
            ("auth.verified_cache", self.verified_cache as u64),
            ("auth.tracked_addresses", self.tracked_addresses as u64),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{key} must be above 0"));
        }
        if self.max_lockout_ms < self.lockout_ms {
            return Err("auth.max_lockout_ms must be at least auth.lockout_ms".into());
        }
        Ok(())
    }

    /// Returns the number of concurrent checks, resolving 0 to the number of cores, at
    /// most [`DEFAULT_MAX_CHECKS`]: each argon2 check holds 19 MiB, so a flood never takes
    /// more than about 76 MiB above idle, however many cores the machine has.
    pub fn concurrent_checks(&self) -> usize {
        match self.max_concurrent_checks {
            0 => std::thread::available_parallelism()
                .map_or(2, usize::from)
                .min(DEFAULT_MAX_CHECKS),
            n => n,
        }
    }

    fn throttle_policy(&self) -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: self.max_failures,
            max_failures_per_address: self.max_failures_per_address,
            lockout: Duration::from_millis(self.lockout_ms),
            max_lockout: Duration::from_millis(self.max_lockout_ms),
            window: Duration::from_millis(self.failure_window_ms),
            tracked_addresses: self.tracked_addresses,
        }
    }
}

/// The client's address, put in a request's extensions by the HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Credentials as a request presents them.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    // Never print a secret, even at debug level.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { user, .. } => write!(f, "Basic({user}:***)"),
            Self::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

impl Credentials {
    /// Parses an `Authorization` header value: `Basic` or `Bearer`, the scheme in any case.
    pub fn parse(header: &str) -> CoreResult<Self> {
        let (scheme, value) = header.trim().split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let (user, password) = decode_basic(value.trim())?;
            Ok(Self::Basic { user, password })
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Ok(Self::Bearer(value.trim().to_owned()))
        } else {
            Err(CoreError::Unauthenticated(format!(
                "unsupported authorization scheme {scheme}: use Basic or Bearer"
            )))
        }
    }
}

/// Decodes the `user:password` of Basic credentials.
pub fn decode_basic(encoded: &str) -> CoreResult<(String, String)> {
    let invalid = || CoreError::Unauthenticated("malformed Basic credentials".into());
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (user, password) = text.split_once(':').ok_or_else(invalid)?;
    Ok((user.to_owned(), password.to_owned()))
}

/// Checks credentials for every front (see the module docs).
#[derive(Debug)]
pub struct Authenticator {
    core: Arc<CallControl>,
    slots: Arc<Semaphore>,
    check_wait: Duration,
    verified: VerifiedCache,
    throttle: Throttle,
}

impl Authenticator {
    /// Builds the authenticator over the core's directory.
    pub fn new(core: Arc<CallControl>, config: &AuthConfig) -> Self {
        Self {
            core,
            slots: Arc::new(Semaphore::new(config.concurrent_checks())),
            check_wait: Duration::from_millis(config.check_wait_ms),
            verified: VerifiedCache::new(
                config.verified_cache,
                Duration::from_secs(config.verified_ttl_s),
            ),
            throttle: Throttle::new(config.throttle_policy()),
        }
    }

    /// Returns the directory the authenticator checks against.
    pub fn directory(&self) -> &crate::core::Directory {
        self.core.directory()
    }

    /// Authenticates credentials from `client` (when known), acting for `act_as`.
    pub async fn authenticate(
        &self,
        credentials: &Credentials,
        act_as: Option<&str>,
        client: Option<IpAddr>,
    ) -> CoreResult<Principal> {
        if let Credentials::Basic { user, .. } = credentials {
            crate::admin::layer::record_user(user);
        }
        let checked = self.check(credentials, act_as, client).await;
        match &checked {
            // A span field is recorded once (the text log appends each record): Basic's
            // name was recorded above, a token's account is known only now.
            Ok(principal) if matches!(credentials, Credentials::Bearer(_)) => {
                let who = principal.service_account.as_deref();
                if let Some(who) = who.or(principal.user.as_deref()) {
                    crate::admin::layer::record_user(who);
                }
            }
            Ok(_) => {}
            Err(CoreError::Throttled { .. }) => {
                metrics::counter!(crate::admin::names::AUTH_FAILURES, "reason" => "throttled")
                    .increment(1);
            }
            Err(CoreError::Unauthenticated(_)) => {
                metrics::counter!(crate::admin::names::AUTH_FAILURES, "reason" => "invalid")
                    .increment(1);
            }
            Err(_) => {}
        }
        checked
    }

    async fn check(
        &self,
        credentials: &Credentials,
        act_as: Option<&str>,
        client: Option<IpAddr>,
    ) -> CoreResult<Principal> {
        if let Some(address) = client
            && let Some(locked) = self.throttle.address_locked(address, Instant::now())
        {
            return Err(throttled(locked));
        }
        match credentials {
            Credentials::Basic { user, password } => {
                self.basic(user, password, act_as, client).await
            }
            Credentials::Bearer(token) => self.bearer(token, act_as, client).await,
        }
    }

    async fn basic(
        &self,
        name: &str,
        password: &str,
        act_as: Option<&str>,
        client: Option<IpAddr>,
    ) -> CoreResult<Principal> {
        if let Some(upstream) = self.core.upstream() {
            return self
                .basic_upstream(upstream.clone(), name, password, act_as, client)
                .await;
        }
        let directory = self.core.directory();
        let Some(user) = directory.user(name) else {
            self.throttle.failed(None, client, Instant::now());
            return Err(invalid_password());
        };
        let key = match &user.password {
            Secret::Clear(_) if user.password.matches(password) => {
                return user_principal(&user, act_as);
            }
            Secret::Clear(_) => {
                self.throttle
                    .failed(Some(&user.name), client, Instant::now());
                return Err(invalid_password());
            }
            // Only bridge mode learns such users, and it returned above: refuse, as the
            // gateway holds nothing to check.
            Secret::Upstream => {
                self.throttle
                    .failed(Some(&user.name), client, Instant::now());
                return Err(invalid_password());
            }
            Secret::Argon2(_) => {
                let key = self.verified.key(AccountKind::User, name, password);
                if self.verified.contains(&key, Instant::now()) {
                    return user_principal(&user, act_as);
                }
                key
            }
        };
        if let Some(locked) = self.throttle.user_locked(name, Instant::now()) {
            return Err(throttled(locked));
        }
        let user_name = user.name.clone();
        let given = password.to_owned();
        let passed = self
            .off_worker(move |core| {
                core.directory()
                    .user(&user_name)
                    .is_some_and(|u| u.password.matches(&given))
            })
            .await?;
        let now = Instant::now();
        if passed {
            self.verified.insert(key, now);
            self.throttle.succeeded(name);
            user_principal(&user, act_as)
        } else {
            self.throttle.failed(Some(&user.name), client, now);
            Err(invalid_password())
        }
    }

    /// Bridge mode: the upstream checks the password (and learns the user); a success is
    /// remembered like a hash check's, so a desktop sending Basic with every request costs
    /// the upstream one sign-in, not one per request. Upstream sign-ins share the check
    /// slots, so a flood of wrong passwords cannot flood the upstream either.
    async fn basic_upstream(
        &self,
        upstream: Arc<dyn crate::core::port::Upstream>,
        name: &str,
        password: &str,
        act_as: Option<&str>,
        client: Option<IpAddr>,
    ) -> CoreResult<Principal> {
        let directory = self.core.directory();
        let key = self.verified.key(AccountKind::User, name, password);
        let known = directory.user(name);
        if let Some(user) = &known
            && self.verified.contains(&key, Instant::now())
        {
            return user_principal(user, act_as);
        }
        if let Some(locked) = self.throttle.user_locked(name, Instant::now()) {
            return Err(throttled(locked));
        }
        let slot = self.slot().await?;
        let signed_in = upstream.sign_in(name.to_owned(), password.to_owned()).await;
        drop(slot);
        let now = Instant::now();
        match signed_in {
            Ok(user) => {
                self.verified.insert(key, now);
                self.throttle.succeeded(name);
                user_principal(&user, act_as)
            }
            Err(error @ CoreError::Unauthenticated(_)) => {
                self.throttle
                    .failed(known.as_ref().map(|u| &u.name), client, now);
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    /// Takes one of the check slots, waiting at most `check_wait`.
    async fn slot(&self) -> CoreResult<tokio::sync::OwnedSemaphorePermit> {
        let busy = || CoreError::Busy {
            what: "credential checking",
            retry_after: BUSY_RETRY_AFTER,
        };
        tokio::time::timeout(self.check_wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())
    }

    async fn bearer(
        &self,
        token: &str,
        act_as: Option<&str>,
        client: Option<IpAddr>,
    ) -> CoreResult<Principal> {
        let directory = self.core.directory();
        let now = Instant::now();
        let cheap = directory
            .service_accounts()
            .iter()
            .find(|a| match &a.token {
                Secret::Clear(_) => a.token.matches(token),
                Secret::Argon2(_) => self.verified.contains(
                    &self
                        .verified
                        .key(AccountKind::ServiceAccount, &a.name, token),
                    now,
                ),
                Secret::Upstream => false,
            });
        if let Some(account) = cheap {
            return directory.service_account_principal(account, act_as);
        }
        let hashed = directory
            .service_accounts()
            .iter()
            .any(|a| matches!(a.token, Secret::Argon2(_)));
        if !hashed {
            self.throttle.failed(None, client, now);
            return Err(invalid_token());
        }
        let given = token.to_owned();
        let matched = self
            .off_worker(move |core| {
                core.directory()
                    .service_accounts()
                    .iter()
                    .find(|a| matches!(a.token, Secret::Argon2(_)) && a.token.matches(&given))
                    .map(|a| a.name.clone())
            })
            .await?;
        let now = Instant::now();
        let account = matched.and_then(|name| directory.service_account(&name));
        let Some(account) = account else {
            self.throttle.failed(None, client, now);
            return Err(invalid_token());
        };
        let key = self
            .verified
            .key(AccountKind::ServiceAccount, &account.name, token);
        self.verified.insert(key, now);
        directory.service_account_principal(account, act_as)
    }

    /// Runs a hash check on the blocking pool, holding one of the check slots; waits at
    /// most `check_wait` for a slot. The slot is held by the blocking task itself, so a
    /// client that goes away mid-check does not free a slot before its check ends.
    async fn off_worker<T: Send + 'static>(
        &self,
        check: impl FnOnce(&CallControl) -> T + Send + 'static,
    ) -> CoreResult<T> {
        let slot = self.slot().await?;
        let core = self.core.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            check(&core)
        })
        .await
        .map_err(|e| CoreError::Internal(format!("credential check failed: {e}")))
    }
}

fn throttled(locked: Locked) -> CoreError {
    let (reason, retry_after) = match locked {
        Locked::User(after) => ("too many failed sign-in attempts for this user", after),
        Locked::Address(after) => ("too many failed sign-in attempts from this address", after),
    };
    CoreError::Throttled {
        reason: reason.into(),
        retry_after,
    }
}

#[cfg(test)]
mod tests;
