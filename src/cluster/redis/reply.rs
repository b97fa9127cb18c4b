//! The engine scripts' replies, read into values or into the errors they mean.

use std::time::Duration;

use ::redis::{RedisError, Value};

use crate::cluster::EngineError;

/// A script's reply `{tag, rest...}`.
pub(super) struct Tagged {
    pub(super) tag: String,
    pub(super) rest: std::vec::IntoIter<Value>,
}

impl Tagged {
    pub(super) fn next(&mut self) -> Result<Value, EngineError> {
        self.rest.next().ok_or_else(|| malformed(&self.tag))
    }
}

pub(super) fn tagged(reply: Value) -> Result<Tagged, EngineError> {
    let mut rest = array(reply)?.into_iter();
    let tag = text(rest.next().ok_or_else(|| malformed("reply"))?)?;
    Ok(Tagged { tag, rest })
}

/// The `{'epoch', current?}` reply as the error it means.
pub(super) fn epoch_changed(given: &str, mut items: Tagged) -> Result<EngineError, EngineError> {
    if items.tag != "epoch" {
        return Err(malformed(&items.tag));
    }
    let current = items.rest.next().map(text).transpose()?;
    Ok(EngineError::EpochChanged {
        given: given.to_owned(),
        current,
    })
}

pub(super) fn array(value: Value) -> Result<Vec<Value>, EngineError> {
    match value {
        Value::Array(items) => Ok(items),
        _ => Err(malformed("array")),
    }
}

pub(super) fn bytes(value: Value) -> Result<Vec<u8>, EngineError> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.into_bytes()),
        _ => Err(malformed("bytes")),
    }
}

pub(super) fn text(value: Value) -> Result<String, EngineError> {
    String::from_utf8(bytes(value)?).map_err(|_| malformed("text"))
}

pub(super) fn integer(value: Value) -> Result<u64, EngineError> {
    match value {
        Value::Int(n) => u64::try_from(n).map_err(|_| malformed("integer")),
        other => text(other)?.parse().map_err(|_| malformed("integer")),
    }
}

pub(super) fn malformed(what: &str) -> EngineError {
    EngineError::Unavailable(format!("malformed reply from redis ({what})"))
}

pub(super) fn unavailable(error: RedisError) -> EngineError {
    EngineError::Unavailable(format!("redis: {error}"))
}

pub(super) fn timed_out(after: Duration) -> EngineError {
    EngineError::Unavailable(format!("redis did not answer within {after:?}"))
}
