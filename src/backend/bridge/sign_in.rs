//! Users and their sessions: a sign-in checks the credentials upstream, teaches the
//! directory the user, opens (or renews) the user's session and starts what runs for it
//! (`notifications`, or `ownership` in cluster mode); a re-read after lost notifications
//! mirrors what `/me` lists, signing in again when the upstream forgot the session. The
//! requests themselves are in `requests`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::core::{CallControl, CoreError, CoreResult, User};

use super::{GwsBridge, Session, convert, lock, notifications, ownership};

impl GwsBridge {
    /// Signs a user in: checks the credentials upstream, learns the user, opens or renews
    /// the session, and mirrors the user's calls and device.
    pub(super) async fn sign_in_user(
        self: &Arc<Self>,
        name: &str,
        password: &str,
    ) -> CoreResult<Arc<User>> {
        let core = self.core()?;
        let existing = lock(&self.sessions).get(name).cloned();
        if existing.is_none() && lock(&self.sessions).len() >= self.config.max_sessions {
            return Err(CoreError::Busy {
                what: "the upstream session table",
                retry_after: Duration::from_secs(5),
            });
        }
        let (body, cookie) = self.read_me(Some((name, password)), None).await?;
        let me = convert::me(&body, &self.config.contact_center).ok_or_else(|| {
            CoreError::PermissionDenied(format!(
                "upstream user {name} has no device with a phone number: it cannot take calls here"
            ))
        })?;
        let cookie = cookie.ok_or_else(|| {
            CoreError::Unavailable("the upstream set no JSESSIONID cookie".into())
        })?;
        core.directory().learn(me.user.clone(), me.center.clone());
        let user = core
            .directory()
            .user(name)
            .ok_or_else(|| CoreError::Internal(format!("user {name} was not learnt")))?;
        let session = match existing {
            Some(session) if session.password == password => {
                *lock(&session.cookie) = cookie;
                session.touch();
                session
            }
            other => {
                if let Some(old) = other {
                    old.stop.cancel();
                }
                let session = Arc::new(Session {
                    user: user.clone(),
                    cookie: Mutex::new(cookie),
                    password: password.to_owned(),
                    last_used: Mutex::new(Instant::now()),
                    stop: self.shutdown.child_token(),
                    subscribed: tokio::sync::watch::Sender::new(false),
                });
                lock(&self.sessions).insert(user.name.clone(), session.clone());
                self.start_session(&session);
                session
            }
        };
        self.mirror_me(&core, &session, &me).await;
        session.subscribed(self.config.reply_wait()).await;
        Ok(user)
    }

    /// Starts what runs for a new session: its CometD client, or in cluster mode the
    /// loop that holds (or waits for) the user's lease and runs the client while it holds
    /// it.
    fn start_session(self: &Arc<Self>, session: &Arc<Session>) {
        match self.cluster.get() {
            None => {
                let stop = session.stop.clone();
                tokio::spawn(notifications::run(self.clone(), session.clone(), stop));
            }
            Some(node) => {
                tokio::spawn(ownership::run(self.clone(), node.clone(), session.clone()));
            }
        }
    }

    /// Mirrors what a `/me` reply lists for the session's user. In cluster mode only the
    /// user's lease holder publishes it (another instance's attempt is refused and
    /// dropped: the holder reads the same upstream).
    async fn mirror_me(&self, core: &CallControl, session: &Session, me: &convert::Me) {
        let user = session.user.to_ref();
        if self
            .cluster
            .get()
            .is_some_and(|node| !node.owns(&user.name))
        {
            return;
        }
        let calls = me
            .calls
            .iter()
            .filter_map(|c| convert::call(c, &user))
            .collect();
        let device = me.device.as_ref().and_then(|d| convert::device(d, &user));
        if let Err(error) = core.mirror_resync(&user.name, calls, device).await {
            tracing::warn!(user = %user.name, %error, "upstream state not mirrored");
        }
    }

    /// Re-reads a user's calls and device after notifications may have been lost.
    pub(super) async fn resync(self: &Arc<Self>, session: &Arc<Session>) -> CoreResult<()> {
        let core = self.core()?;
        let read = self.read_me(None, Some(&session.cookie())).await;
        let body = match read {
            Ok((body, _)) => body,
            Err(CoreError::Unauthenticated(_)) => {
                // The upstream forgot the session (a restart): sign in again.
                self.sign_in_user(&session.user.name, &session.password)
                    .await?;
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        if let Some(me) = convert::me(&body, &self.config.contact_center) {
            self.mirror_me(&core, session, &me).await;
        }
        Ok(())
    }
}
