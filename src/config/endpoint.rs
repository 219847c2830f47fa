//! Endpoints: `scheme://host[:port][/path][?query]`, parsed once at build time
//! by the `http` crate's URI parser, then checked against what each transport
//! can use.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use http::uri::{Authority, Uri};

use crate::encode::{LDP_GELF_PORT, LDP_LTSV_LINE_PORT, LDP_LTSV_NUL_PORT};
use crate::error::{Error, Result};

/// The path an `http(s)://` endpoint without one posts to: Graylog's GELF HTTP
/// input's.
const DEFAULT_HTTP_PATH: &str = "/gelf";

/// What replaces a hidden value (a query value, credentials) in what is shown.
const HIDDEN: &str = "***";

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
    /// GELF over HTTP (`http://host[:port][/path][?query]`: port 80 and path
    /// `/gelf` by default).
    Http,
    /// GELF over HTTPS (`https://host[:port][/path][?query]`: port 443 and path
    /// `/gelf` by default), verified like `tls://`.
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

    /// The scheme written `name`, in any case.
    fn named(name: &str) -> Option<Scheme> {
        [
            Scheme::Tcp,
            Scheme::Tls,
            Scheme::Udp,
            Scheme::Http,
            Scheme::Https,
        ]
        .into_iter()
        .find(|scheme| scheme.as_str().eq_ignore_ascii_case(name))
    }

    fn is_http(self) -> bool {
        matches!(self, Scheme::Http | Scheme::Https)
    }

    /// The port when the endpoint gives none: HTTP's usual ones; the other
    /// transports have no standard port, so theirs must be written.
    fn default_port(self) -> Option<u16> {
        match self {
            Scheme::Http => Some(80),
            Scheme::Https => Some(443),
            Scheme::Tcp | Scheme::Tls | Scheme::Udp => None,
        }
    }

    /// Why a port is needed, with the usual ones.
    fn missing_port(self) -> String {
        match self {
            Scheme::Tcp => "missing port: a `tcp://` endpoint needs one, such as 12201 (Graylog's \
                            GELF TCP input): `tcp://host:12201`"
                .to_string(),
            Scheme::Udp => "missing port: a `udp://` endpoint needs one, such as 12201 (Graylog's \
                            GELF UDP input): `udp://host:12201`"
                .to_string(),
            Scheme::Http | Scheme::Https => "missing port".to_string(),
            Scheme::Tls => format!(
                "missing port: a `tls://` endpoint needs one, such as 12201 (a Graylog GELF TCP \
                 input with TLS on) or, on OVHcloud Logs Data Platform, {LDP_GELF_PORT} for \
                 GELF, {LDP_LTSV_LINE_PORT} for LTSV with line framing, {LDP_LTSV_NUL_PORT} for \
                 LTSV with NUL framing: `tls://host:{LDP_GELF_PORT}`"
            ),
        }
    }
}

/// A parsed endpoint: scheme, host, port and, for `http(s)://`, the path and
/// query of the request target.
///
/// `Display` and `Debug` hide the query's values (`?token=***`), as a query
/// may carry a token: errors and logs show endpoints that way. The path is
/// shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    scheme: Scheme,
    host: String,
    port: u16,
    /// `/gelf` when not given (`http(s)://` only); empty for the others.
    path: String,
    /// Never empty when present (`http(s)://` only).
    query: Option<String>,
}

impl Endpoint {
    /// Parses `tcp://host:port`, `tls://host:port`, `udp://host:port`,
    /// `http://host[:port][/path][?query]` or
    /// `https://host[:port][/path][?query]`. The scheme is read in any case and
    /// spaces around the endpoint are ignored.
    ///
    /// * The host is a DNS name, an IPv4 address or an IPv6 address in
    ///   brackets (`tls://[::1]:12202`).
    /// * `tcp://`, `tls://` and `udp://` need a port and take no path or
    ///   query (a lone trailing `/` is allowed). `http://` defaults to port 80,
    ///   `https://` to 443.
    /// * An `http(s)://` endpoint without a path posts to `/gelf` (Graylog's
    ///   GELF HTTP input); a path given, even a lone `/`, is used as written,
    ///   so `https://host/` posts to `/` (a receiver listening at the root).
    ///   A query is sent with every request as written; `Display` hides its
    ///   values. Characters a URL cannot hold (spaces, non-ASCII...) must be
    ///   percent-encoded, and a fragment (`#...`) is refused, as it would
    ///   never reach the receiver.
    /// * Credentials (`https://user:password@host`) are refused, without being
    ///   shown: set an `Authorization` header with `with_http_header` instead.
    ///   An `@` in the path, or in the query before its first `=`, counts as
    ///   the end of credentials whose unencoded `/` or `?` cut the host
    ///   short: percent-encode (`%40`) one that belongs there.
    ///
    /// A refused endpoint is [`Error::InvalidEndpoint`], saying why.
    ///
    /// ```
    /// use djehouty::{Endpoint, Scheme};
    /// let ep = Endpoint::parse("tls://[::1]:12202")?;
    /// assert_eq!(ep.scheme(), Scheme::Tls);
    /// assert_eq!(ep.host(), "::1");
    /// assert_eq!(ep.port(), 12202);
    ///
    /// let ep = Endpoint::parse("https://graylog.example.com/ingest?token=s3cr3t")?;
    /// assert_eq!((ep.port(), ep.path()), (443, "/ingest"));
    /// assert_eq!(ep.query(), Some("token=s3cr3t"));
    /// assert_eq!(
    ///     ep.to_string(),
    ///     "https://graylog.example.com:443/ingest?token=***"
    /// );
    ///
    /// assert_eq!(Endpoint::parse("http://graylog.example.com")?.path(), "/gelf");
    /// assert!(Endpoint::parse("tcp://graylog.example.com").is_err()); // no port
    /// # Ok::<(), djehouty::Error>(())
    /// ```
    pub fn parse(input: &str) -> Result<Endpoint> {
        parse(input.trim()).map_err(|reason| Error::InvalidEndpoint {
            endpoint: redacted(input),
            reason,
        })
    }

    /// The transport.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host name or IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (80 or 443 by default for `http://` and `https://`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path of an `http(s)://` endpoint (`/gelf` by default); empty for the
    /// other schemes.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query of an `http(s)://` endpoint, without its `?`, as written
    /// (percent-encoding kept); `None` when there is none (an empty one
    /// included) and for the other schemes. It may hold a token: unlike
    /// `Display`, this shows it whole.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The URL an `http(s)://` endpoint's requests go to, query included.
    pub(crate) fn http_uri(&self) -> Result<Uri> {
        let mut url = format!("{}://", self.scheme.as_str());
        self.write_authority(&mut url);
        url.push_str(&self.path);
        if let Some(query) = &self.query {
            url.push('?');
            url.push_str(query);
        }
        // Parsed at build time already; refused here only if that changed.
        Uri::try_from(url).map_err(|error| Error::InvalidEndpoint {
            endpoint: self.to_string(),
            reason: format!("not a URL: {error}"),
        })
    }

    /// `host:port`, an IPv6 host in brackets.
    fn write_authority(&self, out: &mut String) {
        if self.host.contains(':') {
            out.push('[');
            out.push_str(&self.host);
            out.push(']');
        } else {
            out.push_str(&self.host);
        }
        out.push(':');
        out.push_str(itoa::Buffer::new().format(self.port));
    }
}

impl fmt::Display for Endpoint {
    /// `scheme://host:port[/path][?query]`, the port always written and the
    /// query's values hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut authority = String::new();
        self.write_authority(&mut authority);
        write!(f, "{}://{authority}{}", self.scheme.as_str(), self.path)?;
        if let Some(query) = &self.query {
            write!(f, "?{}", hidden_query(query))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Endpoint {
    /// As `Display`: the query's values hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Endpoint")
            .field(&format_args!("{self}"))
            .finish()
    }
}

/// Parses a trimmed endpoint; the error is the reason it is refused, which
/// never quotes the endpoint.
fn parse(text: &str) -> std::result::Result<Endpoint, String> {
    if text.is_empty() {
        return Err("the endpoint is empty: give one such as `tls://host:12201`".into());
    }
    let Some((scheme, rest)) = split_scheme(text) else {
        return Err(
            "missing scheme: start with `tcp://`, `tls://`, `udp://`, `http://` or `https://`"
                .into(),
        );
    };
    let scheme = Scheme::named(scheme)
        .ok_or("unknown scheme: use `tcp`, `tls`, `udp`, `http` or `https`")?;
    // The authority ends at the path, the query or the fragment.
    let (authority, target) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let cut_short = !authority.contains('@') && credentials_cut_short(target);
    if authority.contains('@') || cut_short {
        let instead = match scheme {
            Scheme::Http | Scheme::Https => {
                "set them with `with_http_header` (an `Authorization` header) instead"
            }
            Scheme::Tls => "a client certificate (`with_client_certificate`) authenticates instead",
            Scheme::Tcp | Scheme::Udp => "remove them",
        };
        let at_sign = if cut_short {
            "; an `@` in the path, or in the query before its first `=`, is read as \
             the end of credentials: percent-encode (`%40`) one that belongs there"
        } else {
            ""
        };
        return Err(format!(
            "an endpoint carries no credentials (they are not shown): {instead}{at_sign}"
        ));
    }
    if !scheme.is_http() && !target.is_empty() && target != "/" {
        return Err(format!(
            "a `{}://` endpoint is `host:port` only: a path or query applies to \
             `http(s)://` endpoints",
            scheme.as_str()
        ));
    }
    if target.contains('#') {
        return Err("a fragment (`#...`) never reaches the receiver: remove it".into());
    }
    if target
        .chars()
        .any(|c| !c.is_ascii_graphic() || "\"<>\\^`{|}".contains(c))
    {
        return Err(
            "the path or query holds characters a URL cannot (spaces, control characters, \
             non-ASCII, `<`, `>`, `\"`, backquotes...): percent-encode them"
                .into(),
        );
    }
    let uri = Uri::try_from(text).map_err(|error| why_not_a_uri(authority, &error))?;
    let authority = uri.authority().ok_or("missing host")?;
    let host = host(authority.host())?;
    let port = port(scheme, authority)?;
    let (path, query) = if scheme.is_http() {
        // `http` reads a missing path as `/`: only a written one is used.
        let path = if target.starts_with('/') {
            uri.path()
        } else {
            DEFAULT_HTTP_PATH
        };
        let query = uri.query().filter(|q| !q.is_empty()).map(str::to_string);
        (path.to_string(), query)
    } else {
        (String::new(), None)
    };
    Ok(Endpoint {
        scheme,
        host,
        port,
        path,
        query,
    })
}

/// `scheme` and the rest of `text`, split at its first `://` if what comes
/// before is a scheme's name (letters, digits, `+`, `-`, `.`); `None` if it
/// has none, such as `host/path?next=https://...`, whose `://` is in the
/// query.
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    scheme
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        .then_some((scheme, rest))
}

/// Whether `target` (what follows the authority) shows credentials whose
/// unencoded `/` or `?` ended the authority early, as in
/// `https://user:pa/ss@host/gelf` or `https://to?ken@host/gelf`: an `@` in
/// the path, or in the query before its first `=`. The `http` crate
/// accepts both, so the endpoint would name the credentials' first part as
/// its host. (Credentials holding a `?` and then a `=` still pass for a
/// query: the host then shown is their first part, never the rest.)
fn credentials_cut_short(target: &str) -> bool {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let before_value = query.split('=').next().unwrap_or_default();
    path.contains('@') || before_value.contains('@')
}

/// Why the `http` crate refused an endpoint whose path and query were already
/// checked: its host or port.
fn why_not_a_uri(authority: &str, error: &http::uri::InvalidUri) -> String {
    if authority.is_empty() {
        "missing host".into()
    } else if authority.contains('[') != authority.contains(']') {
        "unbalanced `[` `]` around an IPv6 address".into()
    } else if authority
        .rsplit_once(':')
        .is_some_and(|(host, _)| host.parse::<Ipv6Addr>().is_ok())
    {
        "an IPv6 address must be written in brackets: `[::1]:12201`".into()
    } else if authority.parse::<Authority>().is_err() {
        format!(
            "the host and port are not valid ({error}): the host is a DNS name, an IPv4 \
             address or an IPv6 address in brackets"
        )
    } else {
        format!("not a URL ({error})")
    }
}

/// The host, checked, without an IPv6 address's brackets.
fn host(host: &str) -> std::result::Result<String, String> {
    if let Some(inside) = host.strip_prefix('[') {
        let address = inside.strip_suffix(']').unwrap_or(inside);
        return match address.parse::<Ipv6Addr>() {
            Ok(_) => Ok(address.to_string()),
            // A link-local address's zone (`fe80::1%25eth0`).
            Err(_) if address.contains('%') => {
                Err("an IPv6 zone (`%25...`) is not supported: give an address without one".into())
            }
            Err(_) => Err("not an IPv6 address between `[` and `]`".into()),
        };
    }
    if host.is_empty() {
        return Err("missing host".into());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(
            "the host is not a DNS name or an IP address (letters, digits, `-`, `.` and `_`; \
             an IPv6 address goes in brackets)"
                .into(),
        );
    }
    if is_numeric(host) && host.parse::<Ipv4Addr>().is_err() {
        return Err(
            "the host is numbers and dots but not an IPv4 address in its usual form: \
             write four numbers from 0 to 255 without leading zeros, as in `192.168.1.10` \
             (the system's resolver reads older forms as other addresses than they seem: \
             `010` as octal 8, `127.1` as 127.0.0.1)"
                .into(),
        );
    }
    Ok(host.to_string())
}

/// Whether every label of `host` is a number: decimal, or hexadecimal
/// after `0x` (what the C library's resolver reads as IPv4).
fn is_numeric(host: &str) -> bool {
    host.split('.').all(|label| match label.get(..2) {
        Some(x) if x.eq_ignore_ascii_case("0x") => {
            label[2..].bytes().all(|b| b.is_ascii_hexdigit())
        }
        _ => label.bytes().all(|b| b.is_ascii_digit()),
    })
}

/// The port: the one written (digits only, 1 to 65535), else the scheme's
/// default, if it has one.
fn port(scheme: Scheme, authority: &Authority) -> std::result::Result<u16, String> {
    // No user part (refused before), so the authority is `host[:port]`: what
    // follows the host. `http` reads a port out of range as no port at all.
    let after_host = authority
        .as_str()
        .strip_prefix(authority.host())
        .unwrap_or_default();
    let written = match after_host.strip_prefix(':') {
        Some(written) => written,
        None if after_host.is_empty() => "",
        None => return Err("unexpected text after the host".into()),
    };
    if written.is_empty() {
        return scheme.default_port().ok_or_else(|| scheme.missing_port());
    }
    match written.parse::<u16>() {
        Ok(port) if port != 0 && written.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err("the port is not a number between 1 and 65535".into()),
    }
}

/// A query with each value hidden (`token=***&x=***`); a part without `=` is
/// hidden whole, as it may be a token itself.
fn hidden_query(query: &str) -> String {
    query
        .split('&')
        .map(|part| match part.split_once('=') {
            Some((name, _)) => format!("{name}={HIDDEN}"),
            None if part.is_empty() => String::new(),
            None => HIDDEN.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `input` as an error may show it: credentials, query values and a fragment
/// hidden. As credentials may hold an unencoded `/`, `?` or `#`, everything up
/// to the last `@` is hidden, and then all after the host, since that `@` may
/// have been in the query. When a query's or fragment's sign comes before
/// that `@`, what follows it may be the rest of a query value (`?token=a@b`)
/// rather than a host: nothing but the scheme is shown.
pub(crate) fn redacted(input: &str) -> String {
    let (scheme, rest) = match split_scheme(input) {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), input),
    };
    if let Some((before, after)) = rest.rsplit_once('@') {
        if before.contains(['?', '#', '&', '=', ';']) {
            return format!("{scheme}{HIDDEN}");
        }
        let host_end = after
            .find(['/', '?', '#', '&', '=', ';'])
            .unwrap_or(after.len());
        let (host, more) = after.split_at(host_end);
        let more = if more.is_empty() { "" } else { "/..." };
        return format!("{scheme}{HIDDEN}@{host}{more}");
    }
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, _)) => (rest, format!("#{HIDDEN}")),
        None => (rest, String::new()),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{}", hidden_query(query))),
        None => (rest, String::new()),
    };
    format!("{scheme}{rest}{query}{fragment}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Endpoint {
        Endpoint::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"))
    }

    /// The reason `input` is refused, checking the error's type and that it
    /// names the expected forms.
    fn refused(input: &str) -> String {
        match Endpoint::parse(input) {
            Err(error @ Error::InvalidEndpoint { .. }) => {
                let text = error.to_string();
                assert!(text.contains("tcp://host:port"), "{text}");
                text
            }
            Err(other) => panic!("{input:?}: {other}"),
            Ok(endpoint) => panic!("{input:?} accepted as {endpoint}"),
        }
    }

    #[test]
    fn parses_endpoints() {
        let ep = ok("tcp://graylog.example.com:12201");
        assert_eq!(
            (ep.scheme(), ep.host(), ep.port(), ep.path(), ep.query()),
            (Scheme::Tcp, "graylog.example.com", 12201, "", None)
        );
        let ep = ok("  TLS://127.0.0.1:12202/\n");
        assert_eq!((ep.scheme(), ep.host()), (Scheme::Tls, "127.0.0.1"));
        assert_eq!(ep.to_string(), "tls://127.0.0.1:12202");
        let ep = ok("udp://graylog:12201");
        assert_eq!((ep.scheme(), ep.path()), (Scheme::Udp, ""));
        let ep = ok("https://graylog:443");
        assert_eq!((ep.scheme(), ep.path()), (Scheme::Https, "/gelf"));
        assert_eq!(ep.to_string(), "https://graylog:443/gelf");
        let ep = ok("HttP://Graylog_1.example.com:8080/ingest/gelf");
        assert_eq!(
            (ep.scheme(), ep.host(), ep.port(), ep.path()),
            (Scheme::Http, "Graylog_1.example.com", 8080, "/ingest/gelf")
        );
    }

    #[test]
    fn http_ports_default_and_others_are_kept() {
        let ep = ok("https://graylog.example.com/gelf");
        assert_eq!((ep.port(), ep.path()), (443, "/gelf"));
        assert_eq!(ep.to_string(), "https://graylog.example.com:443/gelf");
        assert_eq!(ok("http://graylog.example.com").port(), 80);
        assert_eq!(ok("http://graylog.example.com:12201").port(), 12201);
        assert_eq!(ok("https://[2001:db8::1]").port(), 443);
        assert_eq!(ok("http://h:00080").port(), 80);
    }

    #[test]
    fn the_http_path_is_gelf_unless_written_and_a_root_is_kept() {
        assert_eq!(ok("https://h").path(), "/gelf");
        assert_eq!(ok("https://h?x=1").path(), "/gelf");
        assert_eq!(ok("https://h/").path(), "/");
        assert_eq!(ok("https://h/?x=1").path(), "/");
        assert_eq!(ok("https://h/a%20b/").path(), "/a%20b/");
    }

    #[test]
    fn ipv6_hosts_are_given_without_brackets() {
        let ep = ok("tls://[::1]:12202");
        assert_eq!((ep.host(), ep.port()), ("::1", 12202));
        assert_eq!(ep.to_string(), "tls://[::1]:12202");
        let ep = ok("http://[::1]:8080/ingest/gelf");
        assert_eq!((ep.host(), ep.path()), ("::1", "/ingest/gelf"));
        assert_eq!(ep.to_string(), "http://[::1]:8080/ingest/gelf");
        let uri = ep.http_uri().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(uri.host(), Some("[::1]"));
    }

    #[test]
    fn a_query_is_kept_for_the_request_but_its_values_never_shown() {
        let ep = ok("https://h/gelf?token=S3cret&tenant=blue&S3cretBare&&a=");
        assert_eq!(ep.query(), Some("token=S3cret&tenant=blue&S3cretBare&&a="));
        let shown = format!("{ep} {ep:?}");
        assert!(
            !shown.contains("S3cret") && !shown.contains("blue"),
            "{shown}"
        );
        assert_eq!(
            ep.to_string(),
            "https://h:443/gelf?token=***&tenant=***&***&&a=***"
        );
        let uri = ep.http_uri().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            uri.path_and_query().map(|p| p.as_str()),
            Some("/gelf?token=S3cret&tenant=blue&S3cretBare&&a=")
        );
        // An empty query is no query.
        let ep = ok("http://h:1/gelf?");
        assert_eq!(
            (ep.query(), ep.to_string().as_str()),
            (None, "http://h:1/gelf")
        );
        assert_eq!(ok("tcp://h:1").query(), None);
    }

    #[test]
    fn credentials_in_an_endpoint_are_refused_and_never_shown() {
        for input in [
            "https://S3cretUser:S3cret-pass@graylog.example.com/gelf",
            "tls://S3cret-pass@graylog.example.com:12202",
            "https://S3cretUser@graylog.example.com",
            // Unencoded `/`, `?` or `#` in a password.
            "https://S3cretUser:S3cret/pass@graylog.example.com/gelf",
            "https://S3cretUser:S3cret?pass@graylog.example.com/gelf",
            "https://S3cretUser:S3cret#pass@graylog.example.com/gelf",
            "S3cretUser:S3cret-pass@graylog.example.com:12201",
            // Cut short at an unencoded `/` or `?`: the `http` crate reads
            // the first part as the host.
            "https://S3cretKey/part2@graylog.example.com/gelf",
            "https://S3cretKey/part2@graylog.example.com/gelf?token=S3cret",
            "https://S3cret?Key@graylog.example.com/gelf",
            "https://S3cret?Key@graylog.example.com/gelf?token=S3cret",
            "https://S3cret?Key&x@graylog.example.com/gelf",
        ] {
            let error = Endpoint::parse(input).expect_err(input);
            assert!(matches!(error, Error::InvalidEndpoint { .. }), "{error}");
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("S3cret"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        let error = refused("https://user:S3cret-pass@graylog.example.com/gelf");
        assert!(error.contains("with_http_header"), "{error}");
        assert!(error.contains("credentials"), "{error}");
        assert!(!error.contains("%40"), "{error}");
        let error = refused("tls://user@graylog.example.com:12202");
        assert!(error.contains("with_client_certificate"), "{error}");
    }

    /// A redirect's target, as the HTTP transport shows it, or an endpoint
    /// whose query value holds an `@`: no part of the value shows.
    #[test]
    fn an_at_sign_in_a_query_value_shows_no_part_of_it() {
        for input in [
            "/x?user=a@S3cret",
            "https://h/gelf?token=abc@S3cretTail",
            "https://h/gelf?a=b&token=abc@S3cret.example/x",
        ] {
            let shown = redacted(input);
            assert!(!shown.contains("S3cret"), "{input}: {shown}");
        }
        assert_eq!(
            redacted("https://user:S3cret/pass@graylog.example.com/gelf"),
            "https://***@graylog.example.com/..."
        );
    }

    /// A host of numbers the resolver would read otherwise than written is
    /// refused; the usual IPv4 address, and names with digits, are not.
    #[test]
    fn ipv4_addresses_only_in_their_usual_form() {
        for input in [
            "tcp://192.168.001.010:12201",
            "tcp://127.1:12201",
            "tcp://2130706433:12201",
            "tcp://0x7f.0.0.1:12201",
            "tcp://1.2.3.256:12201",
            "tcp://1..2.3:12201",
        ] {
            let text = refused(input);
            assert!(text.contains("IPv4"), "{input}: {text}");
        }
        assert_eq!(ok("tcp://192.168.1.10:12201").host(), "192.168.1.10");
        assert_eq!(ok("tcp://0.0.0.0:12201").host(), "0.0.0.0");
        for name in ["1e100.net", "123.example", "0xcafe.example", "a.0x1"] {
            let ep = ok(&format!("tcp://{name}:12201"));
            assert_eq!(ep.host(), name);
        }
    }

    #[test]
    fn an_at_sign_in_a_query_value_is_kept() {
        let ep = ok("https://h/gelf?mail=a@b&x");
        assert_eq!((ep.host(), ep.query()), ("h", Some("mail=a@b&x")));
        assert_eq!(ok("https://h/gelf?x&to=a@b").query(), Some("x&to=a@b"));
        let error = refused("https://h/inputs/a@b");
        assert!(error.contains("%40"), "{error}");
    }

    #[test]
    fn refused_queries_are_not_shown_either() {
        for input in [
            "http://h:0/gelf?token=S3cret",
            "tcp://h:1?token=S3cret",
            "http://h/gelf?token=S3cret#S3cret",
            "http://h:0/gelf?mail=a@b&token=S3cret",
            "http://h/gelf?token=S3cret value",
            // An `@` in a query value: what follows it is no host.
            "https://graylog:99999/gelf?password=p@S3cret",
            "http://h:0/gelf?token=a@S3cret#x",
            "http://h:0/gelf?token=a@S3cret value",
            "http://h:0/gelf?token=a@S3cret/x",
            // No scheme: the `://` in the query is not one.
            "graylog.example.com/gelf?token=S3cret&next=http://x",
            "https:/h/gelf?token=S3cret&next=https://x",
        ] {
            let shown = refused(input);
            assert!(!shown.contains("S3cret"), "{shown}");
        }
    }

    #[test]
    fn a_missing_port_is_refused_with_the_usual_ones() {
        for (input, ports) in [
            ("tcp://graylog", &["12201"][..]),
            ("udp://graylog:", &["12201"]),
            ("tls://graylog", &["12201", "12202", "12200"]),
        ] {
            let error = refused(input);
            assert!(error.contains("missing port"), "{error}");
            for port in ports {
                assert!(error.contains(port), "{port} not in {error}");
            }
        }
        assert!(refused("tls://graylog").contains("Logs Data Platform"));
    }

    #[test]
    fn a_path_or_query_is_refused_without_http() {
        for input in [
            "tcp://h:1/path",
            "udp://h:1/x",
            "tls://h:1?x=1",
            "tcp://h:1/#x",
        ] {
            let error = refused(input);
            assert!(error.contains("`http(s)://` endpoints"), "{error}");
        }
    }

    #[test]
    fn rejects_malformed_endpoints() {
        for (bad, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("graylog:12201", "missing scheme"),
            ("graylog/gelf?next=http://h", "missing scheme"),
            ("ftp://h:1", "unknown scheme"),
            ("://h:1", "unknown scheme"),
            ("tcp://", "missing host"),
            ("tcp://:1", "missing host"),
            ("http://?x=1", "missing host"),
            ("tcp:///", "missing host"),
            ("tcp://h:0", "between 1 and 65535"),
            ("tcp://h:65536", "between 1 and 65535"),
            ("https://h:99999/gelf", "between 1 and 65535"),
            ("tcp://h:x", "between 1 and 65535"),
            ("tcp://h:+1", "between 1 and 65535"),
            ("tcp://::1:5", "in brackets"),
            ("tcp://[::1:5", "`[`"),
            ("tcp://[nothex]:5", "not an IPv6 address"),
            ("tcp://[fe80::1%25eth0]:5", "IPv6 zone"),
            ("tcp://[::1]x:5", "after the host"),
            ("tcp://h:1:2", "not valid"),
            ("tcp://h!$:1", "not a DNS name"),
            ("tcp://gr ay:1", "not valid"),
            ("https://h/ge lf", "percent-encode"),
            ("https://h/journal<1>", "percent-encode"),
            ("https://h/caf\u{e9}", "percent-encode"),
            ("https://h/gelf\u{7f}", "percent-encode"),
            ("https://h/gelf#top", "fragment"),
        ] {
            let error = refused(bad);
            assert!(error.contains(why), "{bad:?}: {error}");
        }
    }
}
