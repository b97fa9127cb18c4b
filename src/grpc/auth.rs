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
        directory.authenticate_basic(&user, &password, act_as)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        directory.authenticate_bearer(value.trim(), act_as)
    } else {
        Err(CoreError::Unauthenticated(format!(
            "unsupported authorization scheme {scheme}: use Basic or Bearer"
        )))
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
}
