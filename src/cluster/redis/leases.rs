//! The lease table on Redis: compare-and-set scripts on `{prefix}lease:{user}`, whose value
//! is `<fence>:<holder>` (see [`super`]); a release also publishes the user on
//! `{prefix}released` (`redis/releases.rs`).

use std::time::Duration;

use ::redis::Value;

use super::reply::{integer, malformed, text};
use super::{RedisEngine, Resend};
use crate::cluster::{EngineError, EngineFuture, Fence, Grant, LeaseTable, Releases};

impl LeaseTable for RedisEngine {
    fn acquire<'a>(
        &'a self,
        user: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> EngineFuture<'a, Option<Grant>> {
        Box::pin(async move {
            let reply = self
                .invoke(
                    self.scripts
                        .acquire
                        .key(self.keys.lease(user))
                        .key(&self.keys.fence)
                        .arg(holder)
                        .arg(ttl_ms(ttl)),
                    Resend::Idempotent,
                )
                .await?;
            match reply {
                Value::Nil => Ok(None),
                fence => Ok(Some(Grant {
                    user: user.to_owned(),
                    holder: holder.to_owned(),
                    fence: Fence(integer(fence)?),
                })),
            }
        })
    }

    fn renew<'a>(&'a self, grant: &'a Grant, ttl: Duration) -> EngineFuture<'a, bool> {
        Box::pin(async move {
            let reply = self
                .invoke(
                    self.scripts
                        .renew
                        .key(self.keys.lease(&grant.user))
                        .arg(lease_value(grant))
                        .arg(ttl_ms(ttl)),
                    Resend::Idempotent,
                )
                .await?;
            Ok(integer(reply)? == 1)
        })
    }

    fn release<'a>(&'a self, grant: &'a Grant) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            self.invoke(
                self.scripts
                    .release
                    .key(self.keys.lease(&grant.user))
                    .arg(lease_value(grant))
                    .arg(&self.keys.released)
                    .arg(&grant.user),
                Resend::Idempotent,
            )
            .await?;
            Ok(())
        })
    }

    fn holder<'a>(&'a self, user: &'a str) -> EngineFuture<'a, Option<Grant>> {
        Box::pin(async move {
            let mut command = ::redis::cmd("GET");
            command.arg(self.keys.lease(user));
            let command = &command;
            let reply = self
                .run(Resend::Idempotent, |mut connection| async move {
                    command.query_async::<Value>(&mut connection).await
                })
                .await?;
            match reply {
                Value::Nil => Ok(None),
                value => parse_lease(user, &text(value)?).map(Some),
            }
        })
    }

    fn releases(&self) -> Releases {
        self.subscribe_releases()
    }
}

/// The lease key's value for `grant`: the fence first, since a holder may contain `:`.
pub(super) fn lease_value(grant: &Grant) -> String {
    format!("{}:{}", grant.fence, grant.holder)
}

fn parse_lease(user: &str, value: &str) -> Result<Grant, EngineError> {
    let (fence, holder) = value.split_once(':').ok_or_else(|| malformed("lease"))?;
    Ok(Grant {
        user: user.to_owned(),
        holder: holder.to_owned(),
        fence: Fence(fence.parse().map_err(|_| malformed("lease fence"))?),
    })
}

/// A TTL in milliseconds, at least 1 (`PX 0` is an error).
pub(super) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_values_round_trip_with_colons_in_the_holder() {
        let grant = Grant {
            user: "agent:7".to_owned(),
            holder: "host:1234:abc".to_owned(),
            fence: Fence(42),
        };
        let parsed = parse_lease(&grant.user, &lease_value(&grant)).expect("parses");
        assert_eq!(parsed, grant);
        assert!(parse_lease("u", "nofence").is_err());
    }

    #[test]
    fn ttl_is_never_zero() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_millis(1500)), 1500);
    }
}
