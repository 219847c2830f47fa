//! Endpoints: `scheme://host:port[/path]`, parsed once at build time.

use std::fmt;

use crate::error::{Error, Result};

/// The transport of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// Plain TCP (`tcp://`).
    Tcp,
    /// TLS over TCP (`tls://`), certificate and host name verified.
    Tls,
    /// GELF over UDP (`udp://`), chunked and compressed.
    Udp,
    /// GELF over HTTP (`http://host:port/path`, path `/gelf` by default).
    Http,
    /// GELF over HTTPS (`https://host:port/path`), verified like `tls://`.
    Https,
}

impl Scheme {
    /// The scheme as written in an endpoint.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Tcp => "tcp",
            Scheme::Tls => "tls",
            Scheme::Udp => "udp",
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// Whether the transport runs over TLS (and needs trust anchors).
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Tls | Scheme::Https)
    }
}

/// A parsed endpoint: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    scheme: Scheme,
    host: String,
    port: u16,
    path: String,
}

impl Endpoint {
    /// Parses `tcp://host:port`, `tls://host:port`, `udp://host:port`,
    /// `http://host:port[/path]` or `https://host:port[/path]` (the path defaults
    /// to `/gelf`, Graylog's). The host is a DNS name, an IPv4 address or a
    /// bracketed IPv6 address (`tls://[::1]:12202`).
    ///
    /// ```
    /// use djehouty::{Endpoint, Scheme};
    /// let ep = Endpoint::parse("tls://[::1]:12202")?;
    /// assert_eq!(ep.scheme(), Scheme::Tls);
    /// assert_eq!(ep.host(), "::1");
    /// assert_eq!(ep.port(), 12202);
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    pub fn parse(input: &str) -> Result<Endpoint> {
        let invalid = |reason: &str| Error::InvalidEndpoint {
            endpoint: redacted(input),
            reason: reason.to_string(),
        };
        let trimmed = input.trim();
        let (scheme, rest) = trimmed
            .split_once("://")
            .ok_or_else(|| invalid("missing scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "tcp" => Scheme::Tcp,
            "tls" => Scheme::Tls,
            "udp" => Scheme::Udp,
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(invalid("unknown scheme")),
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        let path = match scheme {
            Scheme::Http | Scheme::Https => {
                if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace()) {
                    return Err(invalid(
                        "the path may not hold a query, a fragment or spaces",
                    ));
                }
                if path.is_empty() || path == "/" {
                    "/gelf".to_string()
                } else {
                    path.to_string()
                }
            }
            _ if path.is_empty() || path == "/" => String::new(),
            _ => return Err(invalid("only http(s) endpoints have a path")),
        };
        if authority.contains('@') {
            return Err(invalid(
                "an endpoint carries no credentials (they are not shown): set them with \
                 `with_http_header` (an `Authorization` header) instead",
            ));
        }
        if authority.contains(['?', '#']) {
            return Err(invalid("an endpoint has no query or user part"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid("unclosed `[` in IPv6 address"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid("not an IPv6 address between `[` and `]`"));
            }
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| invalid("missing port"))?;
            (host, port)
        } else {
            let (host, port) = authority
                .rsplit_once(':')
                .ok_or_else(|| invalid("missing port"))?;
            if host.contains(':') {
                return Err(invalid("an IPv6 address must be written in brackets"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| invalid("the port is not a number between 1 and 65535"))?;
        if port == 0 {
            return Err(invalid("the port is not a number between 1 and 65535"));
        }
        Ok(Endpoint {
            scheme,
            host: host.to_string(),
            port,
            path,
        })
    }

    /// The path of an `http(s)://` endpoint (`/gelf` by default); empty for the
    /// other schemes.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The transport.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host name or IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.scheme.as_str();
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// `input` as an error may show it: a user part (`user:password@`) and a
/// query, which may hold credentials or tokens, are replaced by `***`.
fn redacted(input: &str) -> String {
    let (scheme, rest) = match input.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, input),
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let path = match path.split_once('?') {
        Some((path, _)) => format!("{path}?***"),
        None => path.to_string(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{path}"),
        None => format!("{authority}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        let ep = Endpoint::parse("tcp://graylog.example.com:12201").unwrap();
        assert_eq!(
            (ep.scheme(), ep.host(), ep.port()),
            (Scheme::Tcp, "graylog.example.com", 12201)
        );
        let ep = Endpoint::parse("TLS://127.0.0.1:12202/").unwrap();
        assert_eq!((ep.scheme(), ep.host()), (Scheme::Tls, "127.0.0.1"));
        let ep = Endpoint::parse("tls://[::1]:1").unwrap();
        assert_eq!(ep.host(), "::1");
        assert_eq!(ep.to_string(), "tls://[::1]:1");
        let ep = Endpoint::parse("udp://graylog:12201").unwrap();
        assert_eq!((ep.scheme(), ep.path()), (Scheme::Udp, ""));
        let ep = Endpoint::parse("https://graylog:443").unwrap();
        assert_eq!((ep.scheme(), ep.path()), (Scheme::Https, "/gelf"));
        assert_eq!(ep.to_string(), "https://graylog:443/gelf");
        let ep = Endpoint::parse("http://[::1]:8080/ingest/gelf").unwrap();
        assert_eq!((ep.host(), ep.path()), ("::1", "/ingest/gelf"));
    }

    #[test]
    fn rejects_malformed_endpoints() {
        for bad in [
            "",
            "graylog:12201",
            "ftp://h:1",
            "tcp://h",
            "tcp://:1",
            "tcp://h:0",
            "tcp://h:65536",
            "tcp://h:x",
            "tcp://::1:5",
            "tcp://[::1:5",
            "tcp://[nothex]:5",
            "tcp://h:1/path",
            "tcp://u@h:1",
            "udp://h:1/x",
            "http://h:1/gelf?x=1",
        ] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidEndpoint { .. }),
                "{bad:?} gave {err}"
            );
            assert!(err.to_string().contains("tcp://host:port"), "{err}");
        }
    }

    #[test]
    fn credentials_in_an_endpoint_are_refused_and_never_shown() {
        for input in [
            "https://user:S3cret-pass@graylog.example.com/gelf",
            "tls://S3cret-pass@graylog.example.com:12202",
            "http://graylog.example.com:12201/gelf?token=S3cret-pass",
        ] {
            let error = Endpoint::parse(input).expect_err(input);
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("S3cret"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        let error = Endpoint::parse("https://user:S3cret-pass@graylog.example.com/gelf")
            .expect_err("credentials");
        assert!(error.to_string().contains("with_http_header"), "{error}");
    }
}
