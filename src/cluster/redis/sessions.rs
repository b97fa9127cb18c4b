//! CometD session records on Redis: one hash `{prefix}session:{clientId}` per record, with
//! fields `owner` and `record` (the [`SessionRecord`] as JSON) and the record's TTL
//! (`PEXPIRE`). Writes and deletes are compare-and-set on `owner` (Lua, like the leases),
//! so an instance that lost a session to another cannot overwrite or delete its record.

use std::time::Duration;

use ::redis::Value;

use super::leases::ttl_ms;
use super::reply::{integer, malformed, text};
use super::{RedisEngine, Resend};
use crate::cluster::{EngineFuture, SessionRecord, SessionRecords};

impl SessionRecords for RedisEngine {
    fn put<'a>(
        &'a self,
        record: &'a SessionRecord,
        ttl: Duration,
        adopt: bool,
    ) -> EngineFuture<'a, bool> {
        Box::pin(async move {
            let json = serde_json::to_string(record).map_err(|_| malformed("session record"))?;
            let reply = self
                .invoke(
                    self.scripts
                        .session_put
                        .key(self.keys.session(&record.client_id))
                        .arg(&record.owner)
                        .arg(json)
                        .arg(ttl_ms(ttl))
                        .arg(if adopt { "1" } else { "0" }),
                    Resend::Idempotent,
                )
                .await?;
            Ok(integer(reply)? == 1)
        })
    }

    fn get<'a>(&'a self, client_id: &'a str) -> EngineFuture<'a, Option<SessionRecord>> {
        Box::pin(async move {
            let mut command = ::redis::cmd("HGET");
            command.arg(self.keys.session(client_id)).arg("record");
            let command = &command;
            let reply = self
                .run(Resend::Idempotent, |mut connection| async move {
                    command.query_async::<Value>(&mut connection).await
                })
                .await?;
            match reply {
                Value::Nil => Ok(None),
                value => serde_json::from_str(&text(value)?)
                    .map(Some)
                    .map_err(|_| malformed("session record")),
            }
        })
    }

    fn delete<'a>(&'a self, client_id: &'a str, owner: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            self.invoke(
                self.scripts
                    .session_delete
                    .key(self.keys.session(client_id))
                    .arg(owner),
                Resend::Idempotent,
            )
            .await?;
            Ok(())
        })
    }
}
