//! What a table entry promises ([`Check`], with the [`Refusal`] it expects) and the
//! attempts that test a promise: who acts, with which credentials, on whose resources.

use std::collections::BTreeMap;

use base64::Engine as _;
use tonic::Code;
use tonic::metadata::MetadataMap;

/// A refusal as both fronts report it: the gRPC code, the HTTP status, and the GWS
/// `statusCode` both carry (the `gws-status-code` trailer, the JSON body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The gRPC code.
    pub grpc: Code,
    /// The HTTP status.
    pub http: u16,
    /// The GWS statusCode.
    pub gws: u32,
}

/// Missing or wrong credentials.
pub const UNAUTHENTICATED: Refusal = Refusal {
    grpc: Code::Unauthenticated,
    http: 401,
    gws: 20,
};
/// The contact center lacks the operation's feature.
pub const MISSING_FEATURE: Refusal = Refusal {
    grpc: Code::PermissionDenied,
    http: 403,
    gws: 3,
};
/// The caller may not do this: another user's call, a role it lacks, acting as someone else.
pub const NOT_PERMITTED: Refusal = Refusal {
    grpc: Code::PermissionDenied,
    http: 403,
    gws: 5,
};
/// The resource does not exist for the caller (another user's device, another contact
/// center's number or call, a feature the contact center lacks).
pub const NOT_FOUND: Refusal = Refusal {
    grpc: Code::NotFound,
    http: 404,
    gws: 6,
};

/// One promise of a table entry, checked against a running gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Served to anyone, without credentials (gRPC OK, HTTP 200).
    Public,
    /// HTTP: no route; anyone, with or without credentials, gets 404 `statusCode` 6.
    Unrouted,
    /// No credentials, a wrong password, a malformed header, and over gRPC an unknown token,
    /// over HTTP an unknown session cookie or a wrong password next to the owner's live
    /// session cookie, all on the owner's own resources: [`UNAUTHENTICATED`].
    NeedsAuth,
    /// gRPC: another user's Basic credentials naming the owner in `x-voice-user`, and the
    /// service account naming a user of another contact center: [`NOT_PERMITTED`].
    ActAs,
    /// Another user of the owner's contact center names the owner's call.
    OwnCall(Refusal),
    /// Another user of the owner's contact center names the owner's device (or number).
    OwnDevice(Refusal),
    /// The owner names a call, number or device of the other contact center (`basic`).
    OtherTenant(Refusal),
    /// `basic1`, whose contact center lacks `api-voice-recording` and
    /// `api-supervisor-monitoring`, on its own resources.
    Feature(Refusal),
    /// `agent1`, who has neither the supervisor nor the admin role, on its own resources.
    Role(Refusal),
    /// CometD: a handshake without valid credentials is denied (`403::Handshake denied`,
    /// `reconnect: none`, no session); a message naming an unknown client gets
    /// `402::Unknown client`.
    BayeuxAuth,
    /// CometD long-polling: another user (with its own credentials), or anyone without the
    /// session's `BAYEUX_BROWSER` cookie, naming a session's `clientId` gets
    /// `402::Unknown client`.
    BayeuxOwnSession,
    /// CometD: a session may subscribe only to its user's `/v2/me` channels, and publish
    /// to none.
    BayeuxOwnChannels,
}

/// Which front an attempt goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// `voice.v1` and the other gRPC services.
    Grpc,
    /// The HTTP listener.
    Http,
}

/// The credentials of an attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The `authorization` header.
    pub authorization: Option<String>,
    /// gRPC `x-voice-user`.
    pub act_as: Option<String>,
    /// HTTP `Cookie`.
    pub cookie: Option<String>,
}

impl Credentials {
    /// No credentials at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Basic credentials.
    pub fn basic(user: &str, password: &str) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self {
            authorization: Some(format!("Basic {token}")),
            ..Self::default()
        }
    }

    /// Basic credentials of a demo user.
    pub fn user(user: &str) -> Self {
        Self::basic(user, crate::common::DEMO_PASSWORD)
    }

    /// A raw `authorization` header.
    pub fn header(value: &str) -> Self {
        Self {
            authorization: Some(value.to_owned()),
            ..Self::default()
        }
    }

    /// The same, acting as `user` (`x-voice-user`).
    pub fn acting_as(mut self, user: &str) -> Self {
        self.act_as = Some(user.to_owned());
        self
    }

    /// The same, with a `JSESSIONID` cookie.
    pub fn with_session(mut self, session: &str) -> Self {
        self.cookie = Some(format!("JSESSIONID={session}"));
        self
    }

    /// Writes the gRPC metadata.
    pub fn apply(&self, metadata: &mut MetadataMap) {
        if let Some(value) = &self.authorization {
            metadata.insert("authorization", value.parse().unwrap());
        }
        if let Some(user) = &self.act_as {
            metadata.insert("x-voice-user", user.parse().unwrap());
        }
    }
}

/// What an attempt must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// An answer (gRPC OK, HTTP 200).
    Served,
    /// This refusal.
    Refused(Refusal),
}

/// One request of a check: who sends it, whose resources it names, what it must get.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// What it tries, for failure messages.
    pub label: String,
    /// The credentials sent.
    pub credentials: Credentials,
    /// The user whose call, device and numbers the request names.
    pub subject: &'static str,
    /// Whether the request asks for the whole contact center (watches, for [`Check::Role`]).
    pub whole_center: bool,
    /// The outcome it must get.
    pub expect: Expect,
}

/// Another user of the same contact center and role as `owner`, whom `owner`'s
/// resources are not.
pub fn intruder(owner: &str) -> &'static str {
    match owner {
        "agent1" | "admin" => "agent2",
        "supervisor1" => "supervisor2",
        "supervisor2" => "supervisor1",
        other => panic!("no intruder defined for {other}"),
    }
}

/// The requests that exercise `check` on an entry owned by `owner` (the user for whom the
/// request, sent with valid credentials, would be legitimate). `sessions` holds a live
/// `JSESSIONID` per owner, for the HTTP attempt that pairs it with a wrong password.
pub fn attempts(
    check: Check,
    owner: &'static str,
    front: Front,
    sessions: &BTreeMap<&'static str, String>,
) -> Vec<Attempt> {
    let attempt = |label: &str, credentials: Credentials, subject, expect| Attempt {
        label: label.to_owned(),
        credentials,
        subject,
        whole_center: false,
        expect,
    };
    let refused = Expect::Refused;
    match check {
        Check::Public => vec![attempt(
            "no credentials",
            Credentials::none(),
            owner,
            Expect::Served,
        )],
        Check::Unrouted => vec![
            attempt(
                "no credentials",
                Credentials::none(),
                owner,
                refused(NOT_FOUND),
            ),
            attempt(
                "the owner's credentials",
                Credentials::user(owner),
                owner,
                refused(NOT_FOUND),
            ),
        ],
        Check::NeedsAuth => {
            let mut all = vec![
                attempt(
                    "no credentials",
                    Credentials::none(),
                    owner,
                    refused(UNAUTHENTICATED),
                ),
                attempt(
                    "a wrong password",
                    Credentials::basic(owner, "wrong"),
                    owner,
                    refused(UNAUTHENTICATED),
                ),
                attempt(
                    "malformed Basic credentials",
                    Credentials::header("Basic !!!"),
                    owner,
                    refused(UNAUTHENTICATED),
                ),
            ];
            match front {
                Front::Grpc => all.push(attempt(
                    "an unknown bearer token",
                    Credentials::header("Bearer not-a-token"),
                    owner,
                    refused(UNAUTHENTICATED),
                )),
                Front::Http => {
                    all.push(attempt(
                        "an unknown session cookie",
                        Credentials::none().with_session("not-a-session"),
                        owner,
                        refused(UNAUTHENTICATED),
                    ));
                    let session = sessions
                        .get(owner)
                        .unwrap_or_else(|| panic!("no HTTP session of {owner}"));
                    all.push(attempt(
                        "a wrong password with the owner's live session cookie",
                        Credentials::basic(owner, "wrong").with_session(session),
                        owner,
                        refused(UNAUTHENTICATED),
                    ));
                }
            }
            all
        }
        Check::ActAs => {
            assert_eq!(front, Front::Grpc, "x-voice-user exists on gRPC only");
            vec![
                attempt(
                    "agent2's credentials acting as the owner",
                    Credentials::user("agent2").acting_as(owner),
                    owner,
                    refused(NOT_PERMITTED),
                ),
                attempt(
                    "the demo service account acting for basic1 of another contact center",
                    Credentials::header("Bearer demo-token").acting_as("basic1"),
                    "basic1",
                    refused(NOT_PERMITTED),
                ),
            ]
        }
        Check::OwnCall(refusal) | Check::OwnDevice(refusal) => {
            let intruder = intruder(owner);
            vec![attempt(
                &format!("{intruder} on {owner}'s resources"),
                Credentials::user(intruder),
                owner,
                refused(refusal),
            )]
        }
        Check::OtherTenant(refusal) => vec![attempt(
            &format!("{owner} on basic1's resources"),
            Credentials::user(owner),
            "basic1",
            refused(refusal),
        )],
        Check::Feature(refusal) => vec![attempt(
            "basic1 (no recording, no monitoring feature)",
            Credentials::user("basic1"),
            "basic1",
            refused(refusal),
        )],
        Check::Role(refusal) => vec![Attempt {
            whole_center: true,
            ..attempt(
                "agent1 (neither supervisor nor admin)",
                Credentials::user("agent1"),
                "agent1",
                refused(refusal),
            )
        }],
        Check::BayeuxAuth | Check::BayeuxOwnSession | Check::BayeuxOwnChannels => {
            panic!("{check:?} is run by the CometD checks")
        }
    }
}
