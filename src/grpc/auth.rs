//! Authentication of gRPC requests from their metadata.
//!
//! - `authorization: Basic base64(user:password)`: an agent acting for itself.
//! - `authorization: Bearer <token>`: a service account; it acts for the user named in
//!   `x-voice-user` (a user of its contact center), or for no user (contact-center watch).

use std::net::IpAddr;

use tonic::Request;
use tonic::metadata::MetadataMap;

use crate::auth::{Authenticator, ClientAddr, Credentials};
use crate::core::{CoreError, Principal};

/// Metadata key naming the user a service account acts for.
pub const ACT_AS_USER: &str = "x-voice-user";

/// Authenticates the caller of a request from its metadata and peer address, through the
/// shared [`Authenticator`] (bounded, cached and throttled checks).
pub async fn authenticate<T>(
    auth: &Authenticator,
    request: &Request<T>,
) -> Result<Principal, CoreError> {
    let (credentials, act_as, client) = read(request)?;
    auth.authenticate(&credentials, act_as.as_deref(), client)
        .await
}

/// What authentication needs from a request, owned, so that the request is not borrowed
/// while the check waits.
fn read<T>(
    request: &Request<T>,
) -> Result<(Credentials, Option<String>, Option<IpAddr>), CoreError> {
    let metadata = request.metadata();
    let act_as = text(metadata, ACT_AS_USER)?.map(str::to_owned);
    let header = text(metadata, "authorization")?.ok_or_else(|| {
        CoreError::Unauthenticated(
            "missing credentials: send authorization Basic or Bearer metadata".into(),
        )
    })?;
    let credentials = Credentials::parse(header)?;
    // tonic's own listener records the peer; the shared HTTP listener puts ClientAddr.
    let client = request
        .remote_addr()
        .map(|addr| addr.ip())
        .or_else(|| request.extensions().get::<ClientAddr>().map(|c| c.0));
    Ok((credentials, act_as, client))
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
    use base64::Engine as _;

    fn request(pairs: &[(&'static str, &str)]) -> Request<()> {
        let mut request = Request::new(());
        for (k, v) in pairs {
            request.metadata_mut().insert(*k, v.parse().unwrap());
        }
        request
    }

    fn basic(user_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
    }

    #[tokio::test]
    async fn basic_bearer_and_missing_credentials() {
        let state = crate::build_state(Config::demo(), Default::default()).unwrap();
        let auth = &state.auth;
        let who = authenticate(auth, &request(&[("authorization", &basic("agent1:demo"))]))
            .await
            .unwrap();
        assert_eq!(who.user.as_deref(), Some("agent1"));
        let who = authenticate(
            auth,
            &request(&[
                ("authorization", "bearer demo-token"),
                (ACT_AS_USER, "agent2"),
            ]),
        )
        .await
        .unwrap();
        assert_eq!(who.user.as_deref(), Some("agent2"));
        assert!(matches!(
            authenticate(auth, &request(&[])).await,
            Err(CoreError::Unauthenticated(_))
        ));
        assert!(matches!(
            authenticate(auth, &request(&[("authorization", &basic("agent1:nope"))])).await,
            Err(CoreError::Unauthenticated(_))
        ));
        assert!(matches!(
            authenticate(auth, &request(&[("authorization", "Digest x")])).await,
            Err(CoreError::Unauthenticated(_))
        ));
        assert!(matches!(
            authenticate(
                auth,
                &request(&[
                    ("authorization", "Bearer demo-token"),
                    (ACT_AS_USER, "basic1")
                ])
            )
            .await,
            Err(CoreError::PermissionDenied(_))
        ));
    }
}
