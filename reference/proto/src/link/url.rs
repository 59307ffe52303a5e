//! The relay URL (`spec/03-relay-link.md`, section 3.1; `LINK-2`).
//!
//! One parser for every place a relay URL enters: the host's `--relay`, the URL a controller
//! reads from a pairing token, the relay's own client connector and the conformance runner.
//! The pairing token's byte-level rule (`TOKEN-8`) is weaker and stays in
//! [`crate::token`]: a token may carry a URL this parser refuses, and the controller then
//! refuses to connect with [`UrlError`].
//!
//! ```
//! use tether_proto::link::RelayUrl;
//!
//! let url = RelayUrl::parse("wss://relay.example/tether")?;
//! assert_eq!((url.host(), url.port(), url.is_tls()), ("relay.example", 443, true));
//! assert!(url.check_transport(false).is_ok());
//! // LINK-2: plain ws:// only to a loopback address, unless explicitly allowed.
//! let plain = RelayUrl::parse("ws://192.0.2.1:7400/")?;
//! assert!(plain.check_transport(false).is_err());
//! assert!(plain.check_transport(true).is_ok());
//! # Ok::<(), tether_proto::link::UrlError>(())
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// Longest relay URL accepted, in bytes (the pairing token's bound, `TOKEN-8`).
pub const MAX_RELAY_URL_LEN: usize = 255;

/// A parsed `ws://` or `wss://` relay URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RelayUrl {
    url: String,
    tls: bool,
    host: String,
    port: u16,
}

/// Why a relay URL was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// Empty, longer than [`MAX_RELAY_URL_LEN`] bytes, or a byte outside printable ASCII
    /// (`0x21`–`0x7e`).
    Malformed,
    /// The scheme is neither `ws://` nor `wss://`.
    Scheme,
    /// No host after the scheme.
    NoHost,
    /// User information (`user@`) in the authority.
    UserInfo,
    /// A `[` without its `]`, or brackets around something that is not an IPv6 address.
    BadIpv6,
    /// The port is not a number in 1..=65535.
    BadPort,
    /// Plain `ws://` to a host that is not a loopback address (`LINK-2`).
    Insecure,
}

impl UrlError {
    /// The requirement this error enforces.
    pub fn requirement(&self) -> &'static str {
        "LINK-2"
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "must be 1 to 255 bytes of printable ASCII",
            Self::Scheme => "must start with ws:// or wss://",
            Self::NoHost => "has no host",
            Self::UserInfo => "user information (user@) is not allowed",
            Self::BadIpv6 => "bad IPv6 address in brackets",
            Self::BadPort => "bad port",
            Self::Insecure => {
                "plain ws:// is allowed only to a loopback address (LINK-2); use wss:// or allow it explicitly"
            }
        })
    }
}

impl std::error::Error for UrlError {}

impl RelayUrl {
    /// Parses a `ws://` or `wss://` URL: scheme (any case), authority (`host`, `host:port`,
    /// `[ipv6]`, `[ipv6]:port`; no user information), then an optional path, query and
    /// fragment, kept as given. The default port is 80 for `ws://`, 443 for `wss://`.
    ///
    /// Parsing does not apply `LINK-2`; [`RelayUrl::check_transport`] does.
    ///
    /// # Errors
    /// [`UrlError`], every variant but [`UrlError::Insecure`].
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        if url.is_empty()
            || url.len() > MAX_RELAY_URL_LEN
            || !url.bytes().all(|b| (0x21..=0x7e).contains(&b))
        {
            return Err(UrlError::Malformed);
        }
        let (tls, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "wss://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "ws://") {
            (false, rest)
        } else {
            return Err(UrlError::Scheme);
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() {
            return Err(UrlError::NoHost);
        }
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (v6, after) = inner.split_once(']').ok_or(UrlError::BadIpv6)?;
            if v6.parse::<Ipv6Addr>().is_err() {
                return Err(UrlError::BadIpv6);
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(UrlError::BadPort)?),
            };
            (v6, port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        if host.contains(['[', ']']) {
            return Err(UrlError::BadIpv6);
        }
        let port = match port {
            None if tls => 443,
            None => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(UrlError::BadPort),
            },
        };
        Ok(Self {
            url: url.to_owned(),
            tls,
            host: host.to_owned(),
            port,
        })
    }

    /// `LINK-2`: plain `ws://` is allowed only to a loopback address, unless
    /// `allow_insecure` (the operator said so explicitly).
    ///
    /// # Errors
    /// [`UrlError::Insecure`].
    pub fn check_transport(&self, allow_insecure: bool) -> Result<(), UrlError> {
        if self.tls || allow_insecure || self.is_loopback() {
            Ok(())
        } else {
            Err(UrlError::Insecure)
        }
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Whether the scheme is `wss://`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The host name or IP address (an IPv6 address without its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the host is a loopback address: `localhost`, `127.0.0.0/8` or `::1`
    /// (`LINK-2`).
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl std::str::FromStr for RelayUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, UrlError> {
        Self::parse(s)
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parts(url: &str) -> (bool, String, u16) {
        let u = RelayUrl::parse(url).unwrap();
        (u.is_tls(), u.host().to_owned(), u.port())
    }

    #[test]
    fn parses_the_forms_of_a_relay_url() {
        assert_eq!(
            parts("ws://127.0.0.1:7400/tether"),
            (false, "127.0.0.1".into(), 7400)
        );
        assert_eq!(
            parts("wss://relay.example"),
            (true, "relay.example".into(), 443)
        );
        assert_eq!(
            parts("ws://relay.example?x=1"),
            (false, "relay.example".into(), 80)
        );
        assert_eq!(
            parts("WSS://Relay.Example:8443/a#b"),
            (true, "Relay.Example".into(), 8443)
        );
        assert_eq!(parts("ws://[::1]:9/"), (false, "::1".into(), 9));
        assert_eq!(
            parts("wss://[2001:db8::1]"),
            (true, "2001:db8::1".into(), 443)
        );
        assert_eq!(
            RelayUrl::parse("ws://h:1/p?q").unwrap().as_str(),
            "ws://h:1/p?q"
        );
    }

    #[test]
    fn refuses_what_is_not_a_relay_url() {
        for (url, error) in [
            ("", UrlError::Malformed),
            ("ws://a b", UrlError::Malformed),
            ("ws://é", UrlError::Malformed),
            ("http://x", UrlError::Scheme),
            ("wsx://x", UrlError::Scheme),
            ("ws://", UrlError::NoHost),
            ("ws:///path", UrlError::NoHost),
            ("ws://:80", UrlError::NoHost),
            ("ws://a@b", UrlError::UserInfo),
            ("ws://[::1", UrlError::BadIpv6),
            ("ws://[nothost]:1", UrlError::BadIpv6),
            ("ws://a]b", UrlError::BadIpv6),
            ("ws://[::1]x", UrlError::BadPort),
            ("ws://a:99999", UrlError::BadPort),
            ("ws://a:0", UrlError::BadPort),
            ("ws://a:+80", UrlError::BadPort),
            ("ws://a:", UrlError::BadPort),
            ("ws://a:1:2", UrlError::BadPort),
        ] {
            assert_eq!(RelayUrl::parse(url), Err(error.clone()), "{url:?}");
        }
        let long = format!("wss://{}", "a".repeat(MAX_RELAY_URL_LEN));
        assert_eq!(RelayUrl::parse(&long), Err(UrlError::Malformed));
    }

    /// LINK-2: plain ws:// only to loopback unless explicitly allowed.
    #[test]
    fn link_2_plain_ws_only_to_loopback() {
        for url in [
            "ws://127.0.0.1/",
            "ws://127.9.9.9:1/",
            "ws://[::1]/",
            "ws://localhost:7400",
            "ws://LOCALHOST",
            "wss://relay.example",
        ] {
            assert_eq!(
                RelayUrl::parse(url).unwrap().check_transport(false),
                Ok(()),
                "{url}"
            );
        }
        for url in [
            "ws://10.0.0.1/",
            "ws://relay.example",
            "ws://[::2]/",
            "ws://127.0.0.1.example/",
        ] {
            let u = RelayUrl::parse(url).unwrap();
            assert_eq!(u.check_transport(false), Err(UrlError::Insecure), "{url}");
            assert_eq!(u.check_transport(true), Ok(()), "{url}");
        }
        assert_eq!(UrlError::Insecure.requirement(), "LINK-2");
    }
}
