//! The upstream's `GET /api/v2/me?subresources=*` reply: the user to learn, its contact
//! center and features, its device and active calls.

use std::collections::BTreeSet;
use std::sync::Arc;

use sonic_rs::{JsonContainerTrait as _, JsonValueTrait as _, Value};

use super::text;
use crate::core::{ContactCenter, Role, Secret, User, stable_id};

/// What `GET /api/v2/me?subresources=*` says about a user.
#[derive(Debug, Clone)]
pub struct Me {
    /// The user, to learn into the directory (no secret: the upstream checks it).
    pub user: User,
    /// Its contact center with the features the upstream lists.
    pub center: ContactCenter,
    /// The user's device, raw (read with [`device`](super::device) once the user is known).
    pub device: Option<Value>,
    /// The user's active calls, raw.
    pub calls: Vec<Value>,
}

/// Reads the `user` of a `GET /api/v2/me?subresources=*` reply. A user without a device
/// (no DN) cannot make calls through the gateway and is refused (`None`). The contact
/// center is the upstream's `contactCenterId` when it sends one, else `default_center`.
pub fn me(value: &Value, default_center: &str) -> Option<Me> {
    let user = value.get("user")?;
    let name = text(user, "userName")?;
    let device = user
        .get("devices")
        .and_then(|v| v.as_array())
        .and_then(|d| d.first())
        .cloned();
    let phone_number = device.as_ref().and_then(|d| text(d, "phoneNumber"))?;
    let device_id = device
        .as_ref()
        .and_then(|d| text(d, "id"))
        .map_or_else(|| stable_id("device", name), str::to_owned);
    let center: Arc<str> = text(user, "contactCenterId")
        .unwrap_or(default_center)
        .into();
    let features: BTreeSet<String> = user
        .get("features")
        .and_then(|v| v.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|f| text(f, "name").or_else(|| f.as_str()))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let roles = user
        .get("roles")
        .and_then(|v| v.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str())
                .filter_map(|r| {
                    Role::from_name(&r.trim_start_matches("ROLE_").to_ascii_lowercase())
                })
                .collect()
        })
        .unwrap_or_else(|| BTreeSet::from([Role::Agent]));
    Some(Me {
        user: User {
            id: text(user, "id").map_or_else(|| stable_id("user", name), str::to_owned),
            name: name.into(),
            first_name: text(user, "firstName").unwrap_or("").to_owned(),
            last_name: text(user, "lastName").unwrap_or("").to_owned(),
            contact_center: center.clone(),
            phone_number: phone_number.into(),
            device_id: device_id.into(),
            roles,
            password: Secret::Upstream,
        },
        center: ContactCenter {
            name: center,
            features,
        },
        device,
        calls: user
            .get("calls")
            .and_then(|v| v.as_array())
            .map(|calls| calls.iter().cloned().collect())
            .unwrap_or_default(),
    })
}
