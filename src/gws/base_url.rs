//! The one base URL of the wing's links: every absolute URI the wing hands out (`uri`,
//! `deviceUri`, `parentCallUri`, `targetDeviceUri`, ...) starts with [`base_url`], in the
//! JSON API's responses and in CometD notifications alike.
//!
//! # Rules (the first that applies wins)
//!
//! 1. `legacy.public_url` ([`PublicUrl`](super::config::PublicUrl)), when configured: the gateway is published under
//!    that URL (`https://gws.example.com`), whatever the request says.
//! 2. With `legacy.trust_forwarded = true`, what the reverse proxy says the client used:
//!    the first element of the standard `Forwarded` header (RFC 7239, its `proto=` and
//!    `host=`), else `X-Forwarded-Proto` and `X-Forwarded-Host` (their first values). Each
//!    of the scheme and the host is taken separately; one the headers do not give, or give
//!    malformed (a scheme other than `http`/`https`, a host that is not a URI authority),
//!    comes from rule 3. The first element is the one the proxy nearest the client wrote,
//!    as Jetty (GWS's server) and Spring read it.
//! 3. The listener's own scheme (`https` when it serves TLS, [`ListenerScheme`]) and the
//!    host the client addressed: the request's authority (HTTP/2 `:authority`, or an
//!    HTTP/1.1 absolute URI, which RFC 9112 §3.2.2 puts before `Host`), else the `Host`
//!    header; `localhost` when neither holds a valid authority.
//!
//! `trust_forwarded` is off by default because any client can send these headers: without
//! a proxy in front that sets or overwrites them, a client would choose the host and scheme
//! of the links the gateway hands out, and a shared cache in front would pass such links on
//! to others. Turn it on only behind a proxy that does write them.
//!
//! A CometD session keeps the base URL of its handshake (long-polling) or of its upgrade
//! request (WebSocket) for its whole life, so its notifications link to where its
//! desktop reached the gateway.

use super::config::LegacyConfig;
use axum::http::header::{FORWARDED, HOST};
use axum::http::uri::Authority;
use axum::http::{Extensions, HeaderMap, HeaderName, Uri};

/// `X-Forwarded-Proto`: the scheme the client used, as a proxy reports it.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: the host the client addressed, as a proxy reports it.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The scheme of the listener a request came in on, put in the request's extensions by
/// the HTTP server (`https` when the listener serves TLS). A request without it (a router
/// driven directly, as in unit tests) counts as `http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListenerScheme {
    /// Plain-text HTTP.
    #[default]
    Http,
    /// HTTP over TLS.
    Https,
}

impl ListenerScheme {
    /// Returns the scheme the server put in a request's extensions (`http` if none).
    pub fn of(extensions: &Extensions) -> Self {
        extensions.get::<Self>().copied().unwrap_or_default()
    }

    /// Returns `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// Returns the base URL (`scheme://host[:port]`) of the links in the answer to a request,
/// by the rules of the module docs.
pub fn base_url(
    config: &LegacyConfig,
    uri: &Uri,
    headers: &HeaderMap,
    listener: ListenerScheme,
) -> String {
    if let Some(public) = &config.public_url {
        return public.as_str().to_owned();
    }
    let (mut proto, mut host) = (None, None);
    if config.trust_forwarded {
        (proto, host) = forwarded(headers);
        proto = proto.or_else(|| first_value(headers, &X_FORWARDED_PROTO).and_then(scheme));
        host = host.or_else(|| first_value(headers, &X_FORWARDED_HOST).and_then(authority));
    }
    let proto = proto.unwrap_or_else(|| listener.as_str());
    let host = host
        .or_else(|| uri.authority().and_then(|a| authority(a.as_str())))
        .or_else(|| headers.get(HOST)?.to_str().ok().and_then(authority))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{proto}://{host}")
}

/// Reads `proto=` and `host=` of the first element of the first `Forwarded` header.
///
/// Written by hand: axum's typed headers (the `headers` crate) have no `Forwarded`, and
/// the part read here is a few lines. A comma inside a quoted value would cut the element
/// short; hosts and schemes hold none, and whatever is cut is refused by the checks below.
fn forwarded(headers: &HeaderMap) -> (Option<&'static str>, Option<String>) {
    let Some(first) = headers
        .get(FORWARDED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
    else {
        return (None, None);
    };
    let (mut proto, mut host) = (None, None);
    for pair in first.split(';') {
        let Some((key, value)) = pair.trim().split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        if key.trim().eq_ignore_ascii_case("proto") {
            proto = proto.or_else(|| scheme(value));
        } else if key.trim().eq_ignore_ascii_case("host") {
            host = host.or_else(|| authority(value));
        }
    }
    (proto, host)
}

/// Returns the first comma-separated value of a header (proxies in a chain append theirs).
fn first_value<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    let value = headers.get(name)?.to_str().ok()?;
    value.split(',').next().map(str::trim)
}

fn scheme(text: &str) -> Option<&'static str> {
    if text.eq_ignore_ascii_case("https") {
        Some("https")
    } else if text.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// Returns `text` if it is a URI authority without user info (`host[:port]`).
fn authority(text: &str) -> Option<String> {
    let parsed: Authority = text.parse().ok()?;
    (!parsed.host().is_empty() && !parsed.as_str().contains('@')).then(|| parsed.to_string())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::gws::config::PublicUrl;

    fn config(public: Option<&str>, trust: bool) -> LegacyConfig {
        LegacyConfig {
            public_url: public.map(|p| PublicUrl::try_from(p.to_owned()).unwrap()),
            trust_forwarded: trust,
            ..LegacyConfig::default()
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn https() -> Extensions {
        let mut e = Extensions::new();
        e.insert(ListenerScheme::Https);
        e
    }

    fn url(config: &LegacyConfig, h: &HeaderMap, e: &Extensions) -> String {
        let uri = Uri::from_static("/api/v2/me");
        base_url(config, &uri, h, ListenerScheme::of(e))
    }

    #[test]
    fn the_listener_scheme_and_host_apply_without_configuration() {
        let h = headers(&[("host", "gw.test:8080")]);
        assert_eq!(
            url(&config(None, false), &h, &Extensions::new()),
            "http://gw.test:8080"
        );
        assert_eq!(
            url(&config(None, false), &h, &https()),
            "https://gw.test:8080"
        );
        let absolute = Uri::from_static("http://other.test:81/api/v2/me");
        let c = config(None, false);
        assert_eq!(
            base_url(&c, &absolute, &h, ListenerScheme::Http),
            "http://other.test:81"
        );
        let bad = headers(&[("host", "a b")]);
        assert_eq!(url(&c, &bad, &Extensions::new()), "http://localhost");
    }

    #[test]
    fn forwarded_headers_are_ignored_unless_trusted() {
        let h = headers(&[
            ("host", "gw.test"),
            ("forwarded", "proto=https;host=gws.example.com"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "other.example.com"),
        ]);
        assert_eq!(
            url(&config(None, false), &h, &Extensions::new()),
            "http://gw.test"
        );
        assert_eq!(
            url(&config(None, true), &h, &Extensions::new()),
            "https://gws.example.com"
        );
    }

    #[test]
    fn the_first_forwarded_element_wins_field_by_field() {
        let c = config(None, true);
        let h = headers(&[
            ("host", "gw.test"),
            (
                "forwarded",
                "for=192.0.2.1;Proto=HTTPS;Host=\"gws.example.com:8443\", proto=http",
            ),
        ]);
        assert_eq!(
            url(&c, &h, &Extensions::new()),
            "https://gws.example.com:8443"
        );
        // Only a scheme in Forwarded: the host comes from X-Forwarded-Host, else Host.
        let h = headers(&[
            ("host", "gw.test"),
            ("forwarded", "proto=https"),
            ("x-forwarded-host", "desk.example.com, proxy.internal"),
        ]);
        assert_eq!(url(&c, &h, &Extensions::new()), "https://desk.example.com");
        let h = headers(&[("host", "gw.test"), ("x-forwarded-proto", "https, http")]);
        assert_eq!(url(&c, &h, &Extensions::new()), "https://gw.test");
    }

    #[test]
    fn malformed_forwarded_values_fall_back() {
        let c = config(None, true);
        let h = headers(&[
            ("host", "gw.test"),
            ("forwarded", "proto=javascript;host=\"evil.test/x\""),
            ("x-forwarded-host", "user@evil.test"),
        ]);
        assert_eq!(url(&c, &h, &https()), "https://gw.test");
    }

    #[test]
    fn a_public_url_wins_over_everything() {
        let h = headers(&[("host", "gw.test"), ("forwarded", "proto=http;host=a.test")]);
        let c = config(Some("HTTPS://gws.example.com/"), true);
        assert_eq!(url(&c, &h, &Extensions::new()), "https://gws.example.com");
    }

    #[test]
    fn public_urls_are_checked() {
        for bad in [
            "gws.example.com",
            "ftp://gws.example.com",
            "https://gws.example.com/gws",
            "https://gws.example.com?x=1",
            "https://user@gws.example.com",
            "https://gws.example.com/#top",
        ] {
            let error = PublicUrl::try_from(bad.to_owned()).unwrap_err();
            assert!(error.starts_with("invalid public_url"), "{bad}: {error}");
        }
        let ok = PublicUrl::try_from("http://gws.example.com:8080".to_owned()).unwrap();
        assert_eq!(ok.as_str(), "http://gws.example.com:8080");
    }
}
