//! Users, contact centers, service accounts and authentication.
//!
//! Passwords and tokens are held as argon2 hashes or, for the demo only, in clear. The
//! checks here are the plain, uncached ones; `crate::auth` is where the fronts' checks are
//! bounded, cached and throttled.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use argon2::{Argon2, PasswordHash, PasswordVerifier};

use super::FastMap;
use super::error::{CoreError, CoreResult};
use super::model::UserRef;

/// A stored secret.
#[derive(Debug, Clone)]
pub enum Secret {
    /// Clear text (demo configurations only).
    Clear(String),
    /// An argon2 PHC string (`$argon2id$...`).
    Argon2(String),
    /// None held here: the upstream GWS checks it (bridge mode).
    Upstream,
}

impl Secret {
    /// Returns whether the secret is held in clear.
    pub fn is_clear(&self) -> bool {
        matches!(self, Self::Clear(_))
    }

    /// Checks a presented secret: a constant-time comparison for a clear one, a full argon2
    /// verification (slow on purpose) for a hashed one.
    pub fn matches(&self, given: &str) -> bool {
        match self {
            Self::Clear(clear) => constant_time_eq(clear.as_bytes(), given.as_bytes()),
            Self::Argon2(hash) => PasswordHash::new(hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(given.as_bytes(), &parsed)
                    .is_ok()
            }),
            Self::Upstream => false,
        }
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

/// The users and contact centers of a [`Directory`].
#[derive(Debug, Default)]
struct Tables {
    users: FastMap<Arc<str>, Arc<User>>,
    by_number: FastMap<Arc<str>, Arc<str>>,
    centers: FastMap<Arc<str>, Arc<ContactCenter>>,
}

impl Tables {
    fn add_center(&mut self, center: ContactCenter) -> CoreResult<()> {
        if self.centers.contains_key(&center.name) {
            return Err(CoreError::invalid(
                "contact_center",
                format!("{} is defined twice", center.name),
            ));
        }
        self.centers.insert(center.name.clone(), Arc::new(center));
        Ok(())
    }

    fn add_user(&mut self, user: User) -> CoreResult<()> {
        if !self.centers.contains_key(&user.contact_center) {
            return Err(CoreError::invalid(
                "user",
                format!(
                    "{} names unknown contact center {}",
                    user.name, user.contact_center
                ),
            ));
        }
        if self.by_number.contains_key(&user.phone_number) {
            return Err(CoreError::invalid(
                "user",
                format!("phone number {} is used twice", user.phone_number),
            ));
        }
        if self.users.contains_key(&user.name) {
            return Err(CoreError::invalid(
                "user",
                format!("{} is defined twice", user.name),
            ));
        }
        self.by_number
            .insert(user.phone_number.clone(), user.name.clone());
        self.users.insert(user.name.clone(), Arc::new(user));
        Ok(())
    }
}

/// Users, contact centers and service accounts. In embedded mode they are fixed at
/// start-up; in bridge mode users and their contact centers are learnt from the upstream
/// when they sign in ([`Directory::learn`]). Lookups return shared handles, so no
/// caller holds the directory's lock.
#[derive(Debug)]
pub struct Directory {
    tables: RwLock<Tables>,
    service_accounts: Vec<ServiceAccount>,
}

impl Directory {
    /// Builds a directory; fails on duplicate names or numbers and unknown contact centers.
    pub fn new(
        centers: Vec<ContactCenter>,
        users: Vec<User>,
        service_accounts: Vec<ServiceAccount>,
    ) -> CoreResult<Self> {
        let mut tables = Tables::default();
        for center in centers {
            tables.add_center(center)?;
        }
        for user in users {
            tables.add_user(user)?;
        }
        for account in &service_accounts {
            if !tables.centers.contains_key(&account.contact_center) {
                return Err(CoreError::invalid(
                    "service_account",
                    format!(
                        "{} names unknown contact center {}",
                        account.name, account.contact_center
                    ),
                ));
            }
        }
        Ok(Self {
            tables: RwLock::new(tables),
            service_accounts,
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        // The tables are replaced entry by entry: a panic elsewhere cannot leave them torn.
        self.tables
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds or replaces a user and its contact center as an upstream reported them (bridge
    /// mode). A phone number another user had moves to this one.
    pub fn learn(&self, user: User, center: ContactCenter) {
        let mut tables = self
            .tables
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(old) = tables.users.get(&user.name).cloned() {
            tables.by_number.remove(&old.phone_number);
        }
        tables
            .by_number
            .insert(user.phone_number.clone(), user.name.clone());
        tables.centers.insert(center.name.clone(), Arc::new(center));
        tables.users.insert(user.name.clone(), Arc::new(user));
    }

    /// Returns every user.
    pub fn users(&self) -> Vec<Arc<User>> {
        self.read().users.values().cloned().collect()
    }

    /// Returns a user by name.
    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.read().users.get(name).cloned()
    }

    /// Returns the user whose phone number this is.
    pub fn user_by_number(&self, number: &str) -> Option<Arc<User>> {
        let tables = self.read();
        let name = tables.by_number.get(number)?;
        tables.users.get(name).cloned()
    }

    /// Returns the user whose device this is.
    pub fn user_by_device(&self, device_id: &str) -> Option<Arc<User>> {
        self.read()
            .users
            .values()
            .find(|u| &*u.device_id == device_id)
            .cloned()
    }

    /// Returns every known phone number.
    pub fn phone_numbers(&self) -> Vec<String> {
        self.read()
            .by_number
            .keys()
            .map(|n| n.to_string())
            .collect()
    }

    /// Returns a contact center by name.
    pub fn contact_center(&self, name: &str) -> Option<Arc<ContactCenter>> {
        self.read().centers.get(name).cloned()
    }

    /// Returns a user by name with whether its contact center has each of `features`,
    /// under one read of the tables: a call view needs the user and two features each time
    /// it is taken, several times per operation.
    pub(crate) fn user_with_features<const N: usize>(
        &self,
        name: &str,
        features: [&str; N],
    ) -> Option<(Arc<User>, [bool; N])> {
        let tables = self.read();
        let user = tables.users.get(name)?.clone();
        let center = tables.centers.get(&user.contact_center);
        let has = features.map(|f| center.is_some_and(|c| c.features.contains(f)));
        Some((user, has))
    }

    /// Returns whether the user's contact center has a feature.
    pub fn has_feature(&self, contact_center: &str, feature: &str) -> bool {
        self.read()
            .centers
            .get(contact_center)
            .is_some_and(|c| c.features.contains(feature))
    }

    /// Returns whether any configured secret is held in clear (demo credentials).
    pub fn has_clear_secrets(&self) -> bool {
        self.read().users.values().any(|u| u.password.is_clear())
            || self.service_accounts.iter().any(|a| a.token.is_clear())
    }

    /// Returns the service accounts.
    pub fn service_accounts(&self) -> &[ServiceAccount] {
        &self.service_accounts
    }

    /// Returns a service account by name.
    pub fn service_account(&self, name: &str) -> Option<&ServiceAccount> {
        self.service_accounts.iter().find(|a| a.name == name)
    }

    /// Authenticates Basic credentials; `act_as` may only name the user itself.
    ///
    /// This is the full check: for a hashed password it runs argon2 (tens of milliseconds
    /// of CPU and 19 MiB), every time. The fronts go through `crate::auth::Authenticator`,
    /// which bounds, caches and throttles these checks.
    pub fn authenticate_basic(
        &self,
        name: &str,
        password: &str,
        act_as: Option<&str>,
    ) -> CoreResult<Principal> {
        let user = self
            .user(name)
            .filter(|u| u.password.matches(password))
            .ok_or_else(invalid_password)?;
        user_principal(&user, act_as)
    }

    /// Authenticates a service account's bearer token, acting for `act_as` when given: the
    /// full check, against every account (see [`Directory::authenticate_basic`]).
    pub fn authenticate_bearer(&self, token: &str, act_as: Option<&str>) -> CoreResult<Principal> {
        let account = self
            .service_accounts
            .iter()
            .find(|a| a.token.matches(token))
            .ok_or_else(invalid_token)?;
        self.service_account_principal(account, act_as)
    }

    /// Returns the principal of the service account `name`, acting for `act_as` when given,
    /// for a caller authenticated without its token (a verified client certificate).
    pub fn named_service_account_principal(
        &self,
        name: &str,
        act_as: Option<&str>,
    ) -> CoreResult<Principal> {
        let account = self
            .service_account(name)
            .ok_or_else(|| CoreError::Unauthenticated(format!("unknown service account {name}")))?;
        self.service_account_principal(account, act_as)
    }

    /// The principal of a service account acting for `act_as`, a user of its contact center.
    pub fn service_account_principal(
        &self,
        account: &ServiceAccount,
        act_as: Option<&str>,
    ) -> CoreResult<Principal> {
        let user = match act_as {
            None => None,
            Some(name) => {
                let user = self
                    .user(name)
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
}

/// The refusal of a wrong user name or password; one message for both, so a reply does
/// not tell which user names exist.
pub fn invalid_password() -> CoreError {
    CoreError::Unauthenticated("invalid user name or password".into())
}

/// The refusal of an unknown bearer token.
pub fn invalid_token() -> CoreError {
    CoreError::Unauthenticated("invalid bearer token".into())
}

/// The principal of a user authenticated with its own credentials; `act_as` may only name
/// the user itself.
pub fn user_principal(user: &User, act_as: Option<&str>) -> CoreResult<Principal> {
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
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Returns the id of a contact center's voice environment: the embedded switch its DNs
/// are on, one per contact center (GWS `/api/v2/voice-environments/{id}`, spec §5.3).
pub fn voice_environment_id(contact_center: &str) -> String {
    stable_id("voice-environment", contact_center)
}

/// Derives a stable UUID for a named object (users, devices), so ids survive restarts.
pub fn stable_id(kind: &str, name: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("voice-gateway/{kind}/{name}").as_bytes(),
    )
    .to_string()
}
