//! Authentication of gRPC requests from their metadata.
//!
//! - `authorization: Basic base64(user:password)`: an agent acting for itself.
//! - `authorization: Bearer <token>`: a service account; it acts for the user named in
//!   `x-voice-user` (a user of its contact center), or for no user (contact-center watch).

use base64::Engine as _;
use tonic::metadata::MetadataMap;

use crate::core::{CoreError, Directory, Principal};

/// Metadata key naming the user a service account acts for.
pub const ACT_AS_USER: &str = "x-voice-user";

/// Authenticates the caller of a request: as the service account of the client certificate
/// the gRPC listener verified (mutual TLS, [`crate::tls`]) when the request sends no
/// `authorization` metadata, else from its metadata ([`authenticate`]).
pub fn authenticate_request<T>(
    directory: &Directory,
    request: &tonic::Request<T>,
) -> Result<Principal, CoreError> {
    let metadata = request.metadata();
    if metadata.get("authorization").is_none()
        && let Some(account) = crate::tls::client_cert_account(request.extensions())
    {
        return directory.service_account_principal(account, text(metadata, ACT_AS_USER)?);
    }
    authenticate(directory, metadata)
}

/// Authenticates the caller from request metadata.
pub fn authenticate(directory: &Directory, metadata: &MetadataMap) -> Result<Principal, CoreError> {
    let act_as = text(metadata, ACT_AS_USER)?;
    let header = text(metadata, "authorization")?.ok_or_else(|| {
        CoreError::Unauthenticated(
            "missing credentials: send authorization Basic or Bearer metadata".into(),
        )
    })?;
    let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        let (user, password) = decode_basic(value.trim())?;
        directory
            .authenticate_basic_cheaply(&user, &password, act_as)
            .unwrap_or_else(|| {
                off_worker(|| directory.authenticate_basic(&user, &password, act_as))
            })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let token = value.trim();
        directory
            .authenticate_bearer_cheaply(token, act_as)
            .unwrap_or_else(|| off_worker(|| directory.authenticate_bearer(token, act_as)))
    } else {
        Err(CoreError::Unauthenticated(format!(
            "unsupported authorization scheme {scheme}: use Basic or Bearer"
        )))
    }
}

/// Runs an argon2 credential check (a first one for these credentials, or a wrong secret),
/// which takes tens of milliseconds of CPU: on the multi-threaded runtime in
/// `block_in_place`, so the worker's other tasks (streams, other requests) move to another
/// worker meanwhile. Clear and already-verified secrets never come here.
fn off_worker<T>(check: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_thread =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(check)
    } else {
        check()
    }
}

/// Decodes the `user:password` of Basic credentials.
pub fn decode_basic(encoded: &str) -> Result<(String, String), CoreError> {
    let invalid = || CoreError::Unauthenticated("malformed Basic credentials".into());
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (user, password) = text.split_once(':').ok_or_else(invalid)?;
    Ok((user.to_owned(), password.to_owned()))
}

fn text<'a>(metadata: &'a MetadataMap, key: &'static str) -> Result<Option<&'a str>, CoreError> {
    metadata
        .get(key)
        .map(|v| {
            v.to_str().map_err(|_| {
                CoreError::Unauthenticated(format!("metadata {key} is not valid text"))
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn metadata(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut map = MetadataMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn basic_bearer_and_missing_credentials() {
        let dir = Config::demo().directory().unwrap();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("agent1:demo")
        );
        let who = authenticate(&dir, &metadata(&[("authorization", &basic)])).unwrap();
        assert_eq!(who.user.as_deref(), Some("agent1"));
        let who = authenticate(
            &dir,
            &metadata(&[
                ("authorization", "Bearer demo-token"),
                (ACT_AS_USER, "agent2"),
            ]),
        )
        .unwrap();
        assert_eq!(who.user.as_deref(), Some("agent2"));
        assert!(matches!(
            authenticate(&dir, &MetadataMap::new()),
            Err(CoreError::Unauthenticated(_))
        ));
        let wrong = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("agent1:nope")
        );
        assert!(matches!(
            authenticate(&dir, &metadata(&[("authorization", &wrong)])),
            Err(CoreError::Unauthenticated(_))
        ));
        assert!(matches!(
            authenticate(
                &dir,
                &metadata(&[
                    ("authorization", "Bearer demo-token"),
                    (ACT_AS_USER, "basic1")
                ])
            ),
            Err(CoreError::PermissionDenied(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashed_secrets_are_checked_once_then_cheaply() {
        use crate::config::hash_secret;
        let mut config = Config::demo();
        let agent = config
            .users
            .iter_mut()
            .find(|u| u.name == "agent1")
            .unwrap();
        agent.password = None;
        agent.password_hash = Some(hash_secret("s3cret").unwrap());
        // Two hashed accounts: the token of the second is never checked against the first
        // once it has been verified.
        let mut accounts = config.service_accounts.clone();
        accounts[0].token = None;
        accounts[0].token_hash = Some(hash_secret("tok-a").unwrap());
        let mut second = accounts[0].clone();
        second.name = "second".into();
        second.token_hash = Some(hash_secret("tok-b").unwrap());
        accounts.push(second);
        config.service_accounts = accounts;
        let dir = config.directory().unwrap();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("agent1:s3cret")
        );
        assert!(
            dir.authenticate_basic_cheaply("agent1", "s3cret", None)
                .is_none()
        );
        let who = authenticate(&dir, &metadata(&[("authorization", &basic)])).unwrap();
        assert_eq!(who.user.as_deref(), Some("agent1"));
        assert!(
            dir.authenticate_basic_cheaply("agent1", "s3cret", None)
                .is_some()
        );
        let wrong = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("agent1:nope")
        );
        assert!(matches!(
            authenticate(&dir, &metadata(&[("authorization", &wrong)])),
            Err(CoreError::Unauthenticated(_))
        ));
        assert!(dir.authenticate_bearer_cheaply("tok-b", None).is_none());
        let who = authenticate(&dir, &metadata(&[("authorization", "Bearer tok-b")])).unwrap();
        assert_eq!(who.service_account.as_deref(), Some("second"));
        assert!(dir.authenticate_bearer_cheaply("tok-b", None).is_some());
        assert!(matches!(
            authenticate(&dir, &metadata(&[("authorization", "Bearer tok-c")])),
            Err(CoreError::Unauthenticated(_))
        ));
    }
}
