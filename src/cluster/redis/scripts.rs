//! The Redis engine's keys and Lua scripts (the `.lua` files beside this one), each built
//! once.

use ::redis::Script;

/// The keys of one engine, built once from the prefix.
#[derive(Debug)]
pub(super) struct Keys {
    pub(super) prefix: String,
    pub(super) epoch: String,
    pub(super) seq: String,
    pub(super) log: String,
    pub(super) fence: String,
    /// The pub/sub channel of releases (not a key: no hash slot).
    pub(super) released: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            epoch: format!("{prefix}epoch"),
            seq: format!("{prefix}seq"),
            log: format!("{prefix}log"),
            fence: format!("{prefix}fence"),
            released: format!("{prefix}released"),
        }
    }

    pub(super) fn lease(&self, user: &str) -> String {
        format!("{}lease:{user}", self.prefix)
    }

    pub(super) fn session(&self, client_id: &str) -> String {
        format!("{}session:{client_id}", self.prefix)
    }
}

/// The engine's Lua scripts, hashed once.
pub(super) struct Scripts {
    pub(super) open: Script,
    pub(super) append: Script,
    pub(super) read: Script,
    pub(super) acquire: Script,
    pub(super) renew: Script,
    pub(super) release: Script,
    pub(super) session_put: Script,
    pub(super) session_delete: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            open: Script::new(include_str!("open.lua")),
            append: Script::new(include_str!("append.lua")),
            read: Script::new(include_str!("read.lua")),
            acquire: Script::new(include_str!("acquire.lua")),
            renew: Script::new(include_str!("renew.lua")),
            release: Script::new(include_str!("release.lua")),
            session_put: Script::new(include_str!("session_put.lua")),
            session_delete: Script::new(include_str!("session_delete.lua")),
        }
    }
}
