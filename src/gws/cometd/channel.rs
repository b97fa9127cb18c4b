//! Bayeux channel names: syntax, wildcard matching and which channels a GWS user may read.
//!
//! Every `/v2/me/...` channel is the authenticated user's own view, so a session only ever
//! receives its own user's notifications whatever it subscribes to; other channel families
//! (other users, supervisors, `/**`) are refused at subscribe time.

/// The channel call notifications are published on.
pub const CALLS_CHANNEL: &str = "/v2/me/calls";
/// The channel device notifications are published on.
pub const DEVICES_CHANNEL: &str = "/v2/me/devices";
/// The channel voice-channel (agent state, do-not-disturb) notifications are published on.
pub const CHANNELS_CHANNEL: &str = "/v2/me/channels";

/// The channels and patterns a user may subscribe to.
const READABLE: &[&str] = &[
    "/v2/me",
    CALLS_CHANNEL,
    DEVICES_CHANNEL,
    CHANNELS_CHANNEL,
    "/v2/me/*",
    "/v2/me/**",
];

/// Returns whether a string is a syntactically valid channel name or pattern: `/`-separated
/// non-empty segments of CometD's accepted characters, wildcards only as the last segment.
pub fn is_valid(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    segments.iter().enumerate().all(|(i, segment)| {
        if *segment == "*" || *segment == "**" {
            return i == last;
        }
        !segment.is_empty() && segment.chars().all(is_segment_char)
    })
}

fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " -_!~()$@#+.{}".contains(c)
}

/// Returns whether a field value (such as a message `id`) contains only characters CometD
/// accepts in message fields.
pub fn is_valid_field(value: &str) -> bool {
    value.len() <= 256
        && value
            .chars()
            .all(|c| is_segment_char(c) || c == '/' || c == '*')
}

/// Returns whether a name is a wildcard pattern (`/a/*` or `/a/**`).
pub fn is_wildcard(name: &str) -> bool {
    name.ends_with("/*") || name.ends_with("/**")
}

/// Returns whether a name is a meta channel.
pub fn is_meta(name: &str) -> bool {
    name == "/meta" || name.starts_with("/meta/")
}

/// Returns whether a name is a service channel.
pub fn is_service(name: &str) -> bool {
    name == "/service" || name.starts_with("/service/")
}

/// Returns whether the subscription `pattern` matches the concrete `channel`.
pub fn matches(pattern: &str, channel: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix("/**") {
        channel
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'))
    } else if let Some(prefix) = pattern.strip_suffix("/*") {
        channel
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
    } else {
        pattern == channel
    }
}

/// Returns whether a GWS user may subscribe to this channel or pattern.
pub fn is_readable(name: &str) -> bool {
    READABLE.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_or_many_segments() {
        assert!(matches("/v2/me/*", "/v2/me/calls"));
        assert!(!matches("/v2/me/*", "/v2/me"));
        assert!(!matches("/v2/me/*", "/v2/me/calls/x"));
        assert!(matches("/v2/me/**", "/v2/me/calls/x"));
        assert!(matches("/v2/me/**", "/v2/me/calls"));
        assert!(!matches("/v2/me/**", "/v2/me"));
        assert!(!matches("/v2/me/**", "/v2/meow/calls"));
        assert!(matches("/v2/me/calls", "/v2/me/calls"));
        assert!(!matches("/v2/me/calls", "/v2/me/devices"));
    }

    #[test]
    fn syntax_follows_cometd() {
        assert!(is_valid("/v2/me/calls"));
        assert!(is_valid("/v2/me/**"));
        assert!(!is_valid("/v2/*/calls"));
        assert!(!is_valid("v2/me"));
        assert!(!is_valid("/v2//me"));
        assert!(!is_valid("/v2/me/"));
        assert!(!is_valid("/v2/m\u{e9}"));
        assert!(is_valid_field("42") && !is_valid_field("<script>"));
    }

    #[test]
    fn only_the_users_own_channels_are_readable() {
        assert!(is_readable("/v2/me/calls") && is_readable("/v2/me/**"));
        assert!(!is_readable("/**"));
        assert!(!is_readable("/v2/users/agent2/calls"));
        assert!(!is_readable("/v2/supervisor/calls"));
    }
}
