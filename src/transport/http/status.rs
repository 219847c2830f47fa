//! The HTTP status policy: which answers mean "send these records again"
//! and which mean "refused for good", and how long a server asks to wait.

use std::time::{Duration, SystemTime};

use hyper::header::{HeaderMap, RETRY_AFTER};

/// Whether records answered with this HTTP status are sent again (server
/// errors, throttling, request timeouts) rather than dropped. 501 (not
/// implemented) and 505 (HTTP version not supported) are server errors that
/// do not pass: the same request would get the same answer, so they are
/// refusals like 4xx.
pub(crate) fn is_retried(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599) && !matches!(status, 501 | 505)
}

/// How long a `Retry-After` asks to wait, in either of its forms: seconds,
/// or until a date (no wait once past). A number too large to read asks
/// for the longest wait (the caller caps it).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(value.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn statuses_are_retried_or_refused() {
        for status in [500, 502, 503, 504, 507, 599, 429, 408] {
            assert!(is_retried(status), "{status}");
        }
        for status in [301, 400, 401, 403, 404, 413, 415, 422, 501, 505] {
            assert!(!is_retried(status), "{status}");
        }
    }

    #[test]
    fn retry_after_seconds_are_read() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("99999999999999999999999"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::MAX));
        // A date: the time until it, none once past.
        let later = SystemTime::now() + Duration::from_secs(3600);
        let date = HeaderValue::from_str(&httpdate::fmt_http_date(later)).expect("a date");
        headers.insert(RETRY_AFTER, date);
        let wait = retry_after(&headers).expect("read");
        assert!(wait > Duration::from_secs(3590) && wait <= Duration::from_secs(3600));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        for unreadable in ["soon", "-5", "1.5", ""] {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(unreadable));
            assert_eq!(retry_after(&headers), None, "{unreadable}");
        }
    }

    #[test]
    fn every_status_message_tells_the_policy_that_applies() {
        for status in 100..=599 {
            let hint = crate::error::http_status_hint(status);
            assert_eq!(
                hint.contains("are kept and sent again"),
                is_retried(status),
                "{status}: {hint}"
            );
            assert_eq!(
                hint.contains("dropped"),
                !is_retried(status),
                "{status}: {hint}"
            );
        }
    }
}
