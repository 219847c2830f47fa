//! The HTTP status policy: which answers mean "send these records again"
//! and which mean "refused for good", and how long a server asks to wait.

use std::time::Duration;

use hyper::header::{HeaderMap, RETRY_AFTER};

/// Whether records answered with this HTTP status are sent again (server
/// errors, throttling, request timeouts) rather than dropped. 501 (not
/// implemented) and 505 (HTTP version not supported) are server errors that
/// do not pass: the same request would get the same answer, so they are
/// refusals like 4xx.
pub(crate) fn is_retried(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599) && !matches!(status, 501 | 505)
}

/// A `Retry-After` given in seconds (the HTTP-date form is ignored).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
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
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
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
