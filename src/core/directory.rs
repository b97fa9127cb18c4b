//! Users, contact centers, service accounts and authentication.
//!
//! Passwords and tokens are held as argon2 hashes or, for the demo only, in clear.
//! A successful argon2 verification is remembered in memory (keyed by the account and the
//! secret that passed, at most [`VERIFIED_CACHE_LIMIT`] entries) so that an agent desktop
//! sending Basic credentials with every request pays the deliberately slow hash once, not
//! per request.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use argon2::{Argon2, PasswordHash, PasswordVerifier};

use super::FastMap;
use super::error::{CoreError, CoreResult};
use super::model::UserRef;

/// How many verified secrets are remembered before the cache starts over.
const VERIFIED_CACHE_LIMIT: usize = 4096;

/// A stored secret.
#[derive(Debug, Clone)]
pub enum Secret {
    /// Clear text (demo configurations only).
    Clear(String),
    /// An argon2 PHC string (`$argon2id$...`).
    Argon2(String),
}

impl Secret {
    /// Returns whether the secret is held in clear.
    pub fn is_clear(&self) -> bool {
        matches!(self, Self::Clear(_))
    }
}

/// A role of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Handles calls.
    Agent,
    /// Monitors agents.
    Supervisor,
    /// Drives the simulator and administers the gateway.
    Admin,
}

impl Role {
    /// Parses a role name (`agent`, `supervisor`, `admin`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "agent" => Some(Self::Agent),
            "supervisor" => Some(Self::Supervisor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// Returns the GWS role name (`ROLE_AGENT`, ...).
    pub fn gws_name(self) -> &'static str {
        match self {
            Self::Agent => "ROLE_AGENT",
            Self::Supervisor => "ROLE_SUPERVISOR",
            Self::Admin => "ROLE_ADMIN",
        }
    }
}

/// A user of the gateway.
#[derive(Debug, Clone)]
pub struct User {
    /// Stable id (a UUID derived from the user name).
    pub id: String,
    /// Login name, unique in the gateway.
    pub name: Arc<str>,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// The user's contact center.
    pub contact_center: Arc<str>,
    /// The user's phone number (DN).
    pub phone_number: Arc<str>,
    /// The id of the user's device.
    pub device_id: Arc<str>,
    /// Roles.
    pub roles: BTreeSet<Role>,
    /// The password.
    pub password: Secret,
}

impl User {
    /// Returns the reference that call views and events carry.
    pub fn to_ref(&self) -> UserRef {
        UserRef {
            name: self.name.clone(),
            contact_center: self.contact_center.clone(),
            phone_number: self.phone_number.clone(),
            device_id: self.device_id.clone(),
        }
    }
}

/// A tenant: a set of users with their features.
#[derive(Debug, Clone)]
pub struct ContactCenter {
    /// Name, unique in the gateway.
    pub name: Arc<str>,
    /// Feature names (`api-voice`, ...).
    pub features: BTreeSet<String>,
}

/// A machine client that acts for the users of one contact center.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    /// Name, for logs.
    pub name: String,
    /// The bearer token.
    pub token: Secret,
    /// The contact center it acts in.
    pub contact_center: Arc<str>,
}

/// Who is making a request, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user acting (an agent, or the user a service account names); `None` for a
    /// service account that names nobody.
    pub user: Option<Arc<str>>,
    /// The contact center the request is scoped to.
    pub contact_center: Arc<str>,
    /// The service account's name, when a service account made the request.
    pub service_account: Option<String>,
    /// Whether the caller may drive the simulator.
    pub admin: bool,
}

/// Users, contact centers and service accounts, fixed at start-up.
#[derive(Debug)]
pub struct Directory {
    users: FastMap<Arc<str>, User>,
    by_number: FastMap<Arc<str>, Arc<str>>,
    centers: FastMap<Arc<str>, ContactCenter>,
    service_accounts: Vec<ServiceAccount>,
    verified: Mutex<HashSet<String>>,
}

impl Directory {
    /// Builds a directory; fails on duplicate names or numbers and unknown contact centers.
    pub fn new(
        centers: Vec<ContactCenter>,
        users: Vec<User>,
        service_accounts: Vec<ServiceAccount>,
    ) -> CoreResult<Self> {
        let mut dir = Self {
            users: FastMap::default(),
            by_number: FastMap::default(),
            centers: FastMap::default(),
            service_accounts,
            verified: Mutex::new(HashSet::new()),
        };
        for center in centers {
            if dir
                .centers
                .insert(center.name.clone(), center.clone())
                .is_some()
            {
                return Err(CoreError::invalid(
                    "contact_center",
                    format!("{} is defined twice", center.name),
                ));
            }
        }
        for user in users {
            if !dir.centers.contains_key(&user.contact_center) {
                return Err(CoreError::invalid(
                    "user",
                    format!(
                        "{} names unknown contact center {}",
                        user.name, user.contact_center
                    ),
                ));
            }
            if dir
                .by_number
                .insert(user.phone_number.clone(), user.name.clone())
                .is_some()
            {
                return Err(CoreError::invalid(
                    "user",
                    format!("phone number {} is used twice", user.phone_number),
                ));
            }
            if dir.users.insert(user.name.clone(), user.clone()).is_some() {
                return Err(CoreError::invalid(
                    "user",
                    format!("{} is defined twice", user.name),
                ));
            }
        }
        for account in &dir.service_accounts {
            if !dir.centers.contains_key(&account.contact_center) {
                return Err(CoreError::invalid(
                    "service_account",
                    format!(
                        "{} names unknown contact center {}",
                        account.name, account.contact_center
                    ),
                ));
            }
        }
        Ok(dir)
    }

    /// Returns every user.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Returns a user by name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Returns the user whose phone number this is.
    pub fn user_by_number(&self, number: &str) -> Option<&User> {
        self.by_number
            .get(number)
            .and_then(|name| self.users.get(name))
    }

    /// Returns the user whose device this is.
    pub fn user_by_device(&self, device_id: &str) -> Option<&User> {
        self.users.values().find(|u| &*u.device_id == device_id)
    }

    /// Returns every configured phone number.
    pub fn phone_numbers(&self) -> impl Iterator<Item = &str> {
        self.by_number.keys().map(|n| &**n)
    }

    /// Returns a contact center by name.
    pub fn contact_center(&self, name: &str) -> Option<&ContactCenter> {
        self.centers.get(name)
    }

    /// Returns whether the user's contact center has a feature.
    pub fn has_feature(&self, contact_center: &str, feature: &str) -> bool {
        self.centers
            .get(contact_center)
            .is_some_and(|c| c.features.contains(feature))
    }

    /// Returns whether any configured secret is held in clear (demo credentials).
    pub fn has_clear_secrets(&self) -> bool {
        self.users.values().any(|u| u.password.is_clear())
            || self.service_accounts.iter().any(|a| a.token.is_clear())
    }

    /// Authenticates Basic credentials; `act_as` may only name the user itself.
    pub fn authenticate_basic(
        &self,
        name: &str,
        password: &str,
        act_as: Option<&str>,
    ) -> CoreResult<Principal> {
        let user = self
            .users
            .get(name)
            .filter(|u| self.verify(&u.password, || format!("u:{name}:{password}"), password))
            .ok_or_else(invalid_password)?;
        basic_principal(user, act_as)
    }

    /// Authenticates Basic credentials when that needs no argon2 check (a clear secret, an
    /// unknown user, or an argon2 secret verified before); `None` when it does, so the
    /// caller runs [`Directory::authenticate_basic`] off the async workers. One lookup
    /// either way: the per-request path does not check twice.
    pub fn authenticate_basic_cheaply(
        &self,
        name: &str,
        password: &str,
        act_as: Option<&str>,
    ) -> Option<CoreResult<Principal>> {
        let Some(user) = self.users.get(name) else {
            return Some(Err(invalid_password()));
        };
        let known = match &user.password {
            Secret::Clear(clear) => constant_time_eq(clear.as_bytes(), password.as_bytes()),
            Secret::Argon2(_)
                if self
                    .lock_verified()
                    .contains(&format!("u:{name}:{password}")) =>
            {
                true
            }
            Secret::Argon2(_) => return None,
        };
        Some(if known {
            basic_principal(user, act_as)
        } else {
            Err(invalid_password())
        })
    }

    /// Returns the service account a token matches without an argon2 check (a clear token,
    /// or a hashed one verified before), if any.
    fn cheap_bearer_match(&self, token: &str) -> Option<&ServiceAccount> {
        self.service_accounts.iter().find(|a| match &a.token {
            Secret::Clear(clear) => constant_time_eq(clear.as_bytes(), token.as_bytes()),
            Secret::Argon2(_) => self
                .lock_verified()
                .contains(&format!("t:{}:{token}", a.name)),
        })
    }

    /// Authenticates a service account's bearer token, acting for `act_as` when given.
    ///
    /// Tokens that match cheaply are tried first, so a token verified before costs no
    /// argon2 check however many hashed accounts are configured; only an unknown token
    /// (or one not yet verified) is checked against the hashed ones.
    pub fn authenticate_bearer(&self, token: &str, act_as: Option<&str>) -> CoreResult<Principal> {
        let account = self
            .cheap_bearer_match(token)
            .or_else(|| {
                self.service_accounts.iter().find(|a| {
                    matches!(a.token, Secret::Argon2(_))
                        && self.verify(&a.token, || format!("t:{}:{token}", a.name), token)
                })
            })
            .ok_or_else(invalid_token)?;
        self.bearer_principal(account, act_as)
    }

    /// Like [`Directory::authenticate_basic_cheaply`], for a bearer token: `None` when only
    /// an argon2 check against the hashed tokens can tell.
    pub fn authenticate_bearer_cheaply(
        &self,
        token: &str,
        act_as: Option<&str>,
    ) -> Option<CoreResult<Principal>> {
        match self.cheap_bearer_match(token) {
            Some(account) => Some(self.bearer_principal(account, act_as)),
            None if self
                .service_accounts
                .iter()
                .any(|a| matches!(a.token, Secret::Argon2(_))) =>
            {
                None
            }
            None => Some(Err(invalid_token())),
        }
    }

    /// Returns the principal of the service account `name`, acting for `act_as` when given,
    /// for a caller authenticated without its token (a verified client certificate).
    pub fn service_account_principal(
        &self,
        name: &str,
        act_as: Option<&str>,
    ) -> CoreResult<Principal> {
        let account = self
            .service_accounts
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| CoreError::Unauthenticated(format!("unknown service account {name}")))?;
        self.bearer_principal(account, act_as)
    }

    /// The principal of a service account acting for `act_as`, a user of its contact center.
    fn bearer_principal(
        &self,
        account: &ServiceAccount,
        act_as: Option<&str>,
    ) -> CoreResult<Principal> {
        let user = match act_as {
            None => None,
            Some(name) => {
                let user = self
                    .users
                    .get(name)
                    .filter(|u| u.contact_center == account.contact_center)
                    .ok_or_else(|| {
                        CoreError::PermissionDenied(format!(
                            "service account {} may not act as {name}: no such user in contact center {}",
                            account.name, account.contact_center
                        ))
                    })?;
                Some(user.name.clone())
            }
        };
        Ok(Principal {
            user,
            contact_center: account.contact_center.clone(),
            service_account: Some(account.name.clone()),
            admin: true,
        })
    }

    /// Checks a secret; `cache_key` names the verified-secrets cache entry (built only for
    /// hashed secrets, so a clear one costs no allocation per request).
    fn verify(&self, secret: &Secret, cache_key: impl FnOnce() -> String, given: &str) -> bool {
        match secret {
            Secret::Clear(clear) => constant_time_eq(clear.as_bytes(), given.as_bytes()),
            Secret::Argon2(hash) => {
                let cache_key = cache_key();
                if self.lock_verified().contains(&cache_key) {
                    return true;
                }
                let ok = PasswordHash::new(hash).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(given.as_bytes(), &parsed)
                        .is_ok()
                });
                if ok {
                    let mut verified = self.lock_verified();
                    if verified.len() >= VERIFIED_CACHE_LIMIT {
                        verified.clear();
                    }
                    verified.insert(cache_key);
                }
                ok
            }
        }
    }

    fn lock_verified(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn invalid_password() -> CoreError {
    CoreError::Unauthenticated("invalid user name or password".into())
}

fn invalid_token() -> CoreError {
    CoreError::Unauthenticated("invalid bearer token".into())
}

/// The principal of a user authenticated with its own credentials; `act_as` may only name
/// the user itself.
fn basic_principal(user: &User, act_as: Option<&str>) -> CoreResult<Principal> {
    if let Some(other) = act_as.filter(|other| **other != *user.name) {
        return Err(CoreError::PermissionDenied(format!(
            "user {} may not act as {other}",
            user.name
        )));
    }
    Ok(Principal {
        user: Some(user.name.clone()),
        contact_center: user.contact_center.clone(),
        service_account: None,
        admin: user.roles.contains(&Role::Admin),
    })
}

/// Compares two secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Derives a stable UUID for a named object (users, devices), so ids survive restarts.
pub fn stable_id(kind: &str, name: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("voice-gateway/{kind}/{name}").as_bytes(),
    )
    .to_string()
}
