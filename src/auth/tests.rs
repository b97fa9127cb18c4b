//! The authenticator over a directory with hashed secrets: cache, bound and throttle.

use std::net::IpAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::config::{Config, hash_secret};
use crate::core::ErrorKind;

const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

/// The demo with agent1's password (`s3cret`) and demo-service's token (`tok`) hashed.
fn hashed(auth: AuthConfig) -> Arc<Authenticator> {
    let mut config = Config::demo();
    let agent = config
        .users
        .iter_mut()
        .find(|u| u.name == "agent1")
        .unwrap();
    agent.password = None;
    agent.password_hash = Some(hash_secret("s3cret").unwrap());
    let account = &mut config.service_accounts[0];
    account.token = None;
    account.token_hash = Some(hash_secret("tok").unwrap());
    config.auth = auth;
    crate::build_state(config, CancellationToken::new())
        .unwrap()
        .auth
        .clone()
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic {
        user: user.into(),
        password: password.into(),
    }
}

#[test]
fn credentials_parse_and_never_print_a_secret() {
    let parsed = Credentials::parse("basic YWdlbnQxOmRlbW8=").unwrap();
    assert_eq!(parsed, basic("agent1", "demo"));
    assert_eq!(format!("{parsed:?}"), "Basic(agent1:***)");
    let bearer = Credentials::parse("Bearer  tok ").unwrap();
    assert_eq!(bearer, Credentials::Bearer("tok".into()));
    assert_eq!(format!("{bearer:?}"), "Bearer(***)");
    assert!(Credentials::parse("Basic !!!").is_err());
    assert!(Credentials::parse("Basic YWdlbnQx").is_err(), "no colon");
    assert!(Credentials::parse("Negotiate x").is_err());
}

#[test]
fn zero_where_it_has_no_meaning_is_refused_with_the_key() {
    let config = AuthConfig {
        lockout_ms: 0,
        ..AuthConfig::default()
    };
    assert_eq!(
        config.validate().unwrap_err(),
        "auth.lockout_ms must be above 0"
    );
    let text = "[auth]\nverified_cache = 0\n";
    let error = Config::parse(text).unwrap_err().to_string();
    assert!(error.contains("auth.verified_cache"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hashed_password_is_checked_once_then_from_the_cache() {
    let auth = hashed(AuthConfig::default());
    let key = auth.verified.key(AccountKind::User, "agent1", "s3cret");
    assert!(!auth.verified.contains(&key, Instant::now()));
    let who = auth
        .authenticate(&basic("agent1", "s3cret"), None, Some(A))
        .await
        .unwrap();
    assert_eq!(who.user.as_deref(), Some("agent1"));
    assert!(auth.verified.contains(&key, Instant::now()));
    // A full pool does not stop a cached check.
    let _all = auth.slots.clone().acquire_many_owned(2).await.unwrap();
    assert!(
        auth.authenticate(&basic("agent1", "s3cret"), None, Some(A))
            .await
            .is_ok()
    );
    assert!(matches!(
        auth.authenticate(&basic("agent1", "s3cret"), Some("agent2"), None)
            .await,
        Err(CoreError::PermissionDenied(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_refuses_after_the_wait_and_changes_nothing() {
    let auth = hashed(AuthConfig {
        max_concurrent_checks: 1,
        check_wait_ms: 10,
        ..AuthConfig::default()
    });
    let held = auth.slots.clone().acquire_owned().await.unwrap();
    let refused = auth
        .authenticate(&basic("agent1", "wrong"), None, Some(A))
        .await
        .unwrap_err();
    assert!(matches!(refused, CoreError::Busy { .. }), "{refused:?}");
    assert_eq!(refused.kind(), ErrorKind::Unavailable);
    assert_eq!(refused.retry_after(), Some(BUSY_RETRY_AFTER));
    // A refusal for a busy pool is not a failed check: nothing is counted.
    assert_eq!(auth.throttle.user_locked("agent1", Instant::now()), None);
    drop(held);
    assert!(
        auth.authenticate(&basic("agent1", "s3cret"), None, Some(A))
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_lock_the_user_name_but_never_a_cached_client() {
    let auth = hashed(AuthConfig {
        max_failures: 3,
        max_failures_per_address: 0,
        ..AuthConfig::default()
    });
    auth.authenticate(&basic("agent1", "s3cret"), None, Some(A))
        .await
        .unwrap();
    for _ in 0..3 {
        let error = auth
            .authenticate(&basic("agent1", "guess"), None, Some(B))
            .await
            .unwrap_err();
        assert!(matches!(error, CoreError::Unauthenticated(_)), "{error:?}");
    }
    let error = auth
        .authenticate(&basic("agent1", "guess"), None, Some(B))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ResourceExhausted, "{error:?}");
    let after = error.retry_after().unwrap();
    assert!(
        after <= Duration::from_millis(DEFAULT_LOCKOUT_MS),
        "{after:?}"
    );
    assert!(error.to_string().contains("this user"), "{error}");
    // The real agent1, whose check is cached, goes on.
    assert!(
        auth.authenticate(&basic("agent1", "s3cret"), None, Some(A))
            .await
            .is_ok()
    );
    // Other users are not affected.
    assert!(
        auth.authenticate(&basic("agent2", "demo"), None, Some(B))
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_one_address_lock_that_address_only() {
    let auth = hashed(AuthConfig {
        max_failures: 0,
        max_failures_per_address: 2,
        ..AuthConfig::default()
    });
    auth.authenticate(&basic("agent1", "s3cret"), None, Some(B))
        .await
        .unwrap();
    for user in ["nobody", "agent2"] {
        let error = auth
            .authenticate(&basic(user, "guess"), None, Some(A))
            .await
            .unwrap_err();
        assert!(matches!(error, CoreError::Unauthenticated(_)), "{error:?}");
    }
    let error = auth
        .authenticate(&basic("agent1", "s3cret"), None, Some(A))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ResourceExhausted, "{error:?}");
    assert!(error.to_string().contains("this address"), "{error}");
    assert!(
        auth.authenticate(&basic("agent1", "s3cret"), None, Some(B))
            .await
            .is_ok()
    );
    // Bearer failures count for the address too.
    let error = auth
        .authenticate(&Credentials::Bearer("tok".into()), None, Some(A))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ResourceExhausted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_tokens_are_checked_once_and_wrong_ones_are_refused() {
    let auth = hashed(AuthConfig::default());
    let token = Credentials::Bearer("tok".into());
    let who = auth
        .authenticate(&token, Some("agent2"), None)
        .await
        .unwrap();
    assert_eq!(who.service_account.as_deref(), Some("demo-service"));
    assert_eq!(who.user.as_deref(), Some("agent2"));
    let _all = auth.slots.clone().acquire_many_owned(2).await.unwrap();
    assert!(
        auth.authenticate(&token, None, None).await.is_ok(),
        "a verified token needs no slot"
    );
    drop(_all);
    let error = auth
        .authenticate(&Credentials::Bearer("nope".into()), None, None)
        .await
        .unwrap_err();
    assert!(matches!(error, CoreError::Unauthenticated(_)), "{error:?}");
}
