//! What a shutdown could not deliver: counted by the delivery side, told to
//! the caller by whichever processor ran the shutdown.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;

/// What a shutdown left undelivered, and why.
#[derive(Debug, Clone)]
pub(crate) struct Undelivered {
    /// The endpoint the records were for.
    pub(crate) endpoint: String,
    /// The time the shutdown had for delivery.
    pub(crate) budget: Duration,
    /// Still buffered when time ran out.
    pub(crate) buffered: usize,
    /// The bytes of those.
    pub(crate) bytes: usize,
    /// Of those, records written that the receiver's TCP had not
    /// acknowledged.
    pub(crate) unacknowledged: u64,
    /// Dropped during the shutdown: from the full buffer, arriving after the
    /// deadline, or still on their way into the buffer when it ended.
    pub(crate) dropped: u64,
    /// The last delivery error, if any.
    pub(crate) last_error: Option<Arc<Error>>,
}

impl Undelivered {
    /// Records not delivered.
    pub(crate) fn records(&self) -> u64 {
        self.buffered as u64 + self.dropped
    }
}

impl fmt::Display for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} record(s) were not delivered to {} in the {:?} the shutdown left for it: ",
            self.records(),
            self.endpoint,
            self.budget
        )?;
        if self.buffered > 0 {
            write!(
                f,
                "{} ({} bytes) still waiting when time ran out",
                self.buffered, self.bytes
            )?;
            if self.unacknowledged > 0 {
                write!(
                    f,
                    " ({} of them written but never acknowledged by the receiver)",
                    self.unacknowledged
                )?;
            }
            if self.dropped > 0 {
                f.write_str(", ")?;
            }
        }
        if self.dropped > 0 {
            write!(
                f,
                "{} dropped during the shutdown (retry buffer full, arriving after its \
                 deadline, or on their way into the buffer when it ended)",
                self.dropped
            )?;
        }
        match &self.last_error {
            Some(error) => write!(f, " (last error: {error})")?,
            None => f.write_str(" (the endpoint was reachable but did not take them in time)")?,
        }
        f.write_str("; a longer timeout or a larger retry buffer may help")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn undelivered(buffered: usize, unacknowledged: u64, dropped: u64) -> Undelivered {
        Undelivered {
            endpoint: "tcp://127.0.0.1:9".into(),
            budget: Duration::from_secs(2),
            buffered,
            bytes: buffered * 100,
            unacknowledged,
            dropped,
            last_error: None,
        }
    }

    /// Each part of the report is there when, and only when, it has
    /// something to say.
    #[test]
    fn the_report_says_what_was_left_and_why() {
        let head = "record(s) were not delivered to tcp://127.0.0.1:9 in the 2s the shutdown \
                    left for it: ";
        let tail = " (the endpoint was reachable but did not take them in time); a longer \
                    timeout or a larger retry buffer may help";
        let dropped = "dropped during the shutdown (retry buffer full, arriving after its \
                       deadline, or on their way into the buffer when it ended)";
        for (left, records, middle) in [
            (
                undelivered(3, 0, 0),
                3,
                "3 (300 bytes) still waiting when time ran out".to_string(),
            ),
            (
                undelivered(2, 1, 0),
                2,
                "2 (200 bytes) still waiting when time ran out (1 of them written but never \
                 acknowledged by the receiver)"
                    .to_string(),
            ),
            (undelivered(0, 0, 4), 4, format!("4 {dropped}")),
            (
                undelivered(1, 0, 5),
                6,
                format!("1 (100 bytes) still waiting when time ran out, 5 {dropped}"),
            ),
        ] {
            assert_eq!(left.records(), records);
            assert_eq!(left.to_string(), format!("{records} {head}{middle}{tail}"));
        }
    }

    /// The last delivery error, when there was one, replaces the guess.
    #[test]
    fn the_report_names_the_last_error() {
        let mut left = undelivered(1, 0, 0);
        left.last_error = Some(Arc::new(Error::ShutDown));
        let text = left.to_string();
        assert!(
            text.ends_with(
                " (last error: the exporter is shut down); a longer timeout or a larger retry \
                 buffer may help"
            ),
            "{text}"
        );
    }
}
