//! The `[[contact_centers]]`, `[[users]]` and `[[service_accounts]]` tables, the directory
//! built from them, and their secrets (clear or argon2 hashes).

use std::collections::BTreeSet;

use serde::Deserialize;

use super::Config;
use crate::core::{ContactCenter, Directory, Role, Secret, ServiceAccount, User, stable_id};

/// A contact center.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactCenterConfig {
    /// Unique name.
    pub name: String,
    /// Feature names.
    #[serde(default)]
    pub features: Vec<String>,
}

/// A user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Unique login name.
    pub name: String,
    /// First name.
    #[serde(default)]
    pub first_name: String,
    /// Last name.
    #[serde(default)]
    pub last_name: String,
    /// Contact center name.
    pub contact_center: String,
    /// The user's DN.
    pub phone_number: String,
    /// Clear password (demo only).
    pub password: Option<String>,
    /// Argon2 PHC hash of the password.
    pub password_hash: Option<String>,
    /// Role names: `agent`, `supervisor`, `admin`.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// A service account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountConfig {
    /// Name, for logs.
    pub name: String,
    /// Contact center name.
    pub contact_center: String,
    /// Clear token (demo only).
    pub token: Option<String>,
    /// Argon2 PHC hash of the token.
    pub token_hash: Option<String>,
    /// The subject common name or SAN DNS name of a client certificate (signed by
    /// `tls.client_ca_file`) that authenticates as this account on the gRPC listener.
    #[serde(default)]
    pub client_cert: Option<String>,
}

impl Config {
    /// Builds the directory of users, contact centers and service accounts.
    pub fn directory(&self) -> anyhow::Result<Directory> {
        let centers = self
            .contact_centers
            .iter()
            .map(|c| ContactCenter {
                name: c.name.as_str().into(),
                features: c.features.iter().cloned().collect(),
            })
            .collect();
        let mut users = Vec::new();
        // In bridge mode users come from the upstream as they sign in.
        let configured = if self.upstream.url.is_some() {
            &[][..]
        } else {
            &self.users[..]
        };
        for (i, u) in configured.iter().enumerate() {
            let key = format!("users[{i}] ({})", u.name);
            let roles = u
                .roles
                .iter()
                .map(|r| {
                    Role::from_name(r).ok_or_else(|| {
                        anyhow::anyhow!(
                            "{key}.roles: unknown role {r:?} (expected agent, supervisor or admin)"
                        )
                    })
                })
                .collect::<anyhow::Result<BTreeSet<Role>>>()?;
            crate::core::validate_number("phone_number", &u.phone_number)
                .map_err(|e| anyhow::anyhow!("{key}.phone_number: {e}"))?;
            users.push(User {
                id: stable_id("user", &u.name),
                name: u.name.as_str().into(),
                first_name: u.first_name.clone(),
                last_name: u.last_name.clone(),
                contact_center: u.contact_center.as_str().into(),
                phone_number: u.phone_number.as_str().into(),
                device_id: stable_id("device", &u.name).into(),
                roles,
                password: secret(
                    &key,
                    ("password", &u.password),
                    ("password_hash", &u.password_hash),
                )?,
            });
        }
        let accounts = self
            .service_accounts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                Ok(ServiceAccount {
                    name: a.name.clone(),
                    token: secret(
                        &format!("service_accounts[{i}] ({})", a.name),
                        ("token", &a.token),
                        ("token_hash", &a.token_hash),
                    )?,
                    contact_center: a.contact_center.as_str().into(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Directory::new(centers, users, accounts)?)
    }
}

/// Reads the secret of `owner` (its key in the file) from the clear key or the hash key,
/// each given as `(key name, value)`.
fn secret(
    owner: &str,
    (clear_key, clear): (&str, &Option<String>),
    (hash_key, hash): (&str, &Option<String>),
) -> anyhow::Result<Secret> {
    match (clear, hash) {
        (Some(clear), None) => Ok(Secret::Clear(clear.clone())),
        (None, Some(hash)) => {
            argon2::PasswordHash::new(hash).map_err(|e| {
                anyhow::anyhow!(
                    "{owner}.{hash_key}: expected an argon2 PHC string \
                     (`voice-gateway hash-password`): {e}"
                )
            })?;
            Ok(Secret::Argon2(hash.clone()))
        }
        (Some(_), Some(_)) => anyhow::bail!(
            "{owner}: both {clear_key} and {hash_key} are set; expected exactly one of them"
        ),
        (None, None) => anyhow::bail!(
            "{owner}: neither {clear_key} nor {hash_key} is set; expected exactly one of them"
        ),
    }
}

/// Hashes a secret with argon2id for a configuration file.
pub fn hash_secret(secret: &str) -> anyhow::Result<String> {
    use argon2::PasswordHasher;
    let hash = argon2::Argon2::default()
        .hash_password(secret.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
    Ok(hash.to_string())
}
