//! Resolving the endpoint's host name: bounded in time, one lookup at a
//! time, and the last good answer kept for when the resolver fails.
//!
//! * An IP address is used as is, without a lookup.
//! * Each connection attempt (and UDP's periodic check of its socket's
//!   address) looks the name up again, waiting at most
//!   [`RESOLVE_TIMEOUT`]. The lookup runs as a task of its own: one that is
//!   still running when the time is up goes on, and the next attempt waits
//!   for it rather than starting another. So at most one lookup per endpoint
//!   is ever in flight: the system resolver blocks a thread of the runtime's
//!   small blocking pool until it answers, and cannot be cancelled.
//! * When a lookup fails or times out, the addresses of the last one that
//!   succeeded are used. The first such fallback is a warning
//!   (`djehouty.ResolveFailedUsingLastAddresses`), the next ones are counted
//!   (debug), and the count is told when the resolver answers again
//!   (`djehouty.ResolveRecovered`). Without any earlier answer, the attempt
//!   fails with [`Error::Resolve`] or a [`Step::Resolve`] timeout.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Endpoint, RESOLVE_TIMEOUT};
use crate::error::{Error, Result, Step};

/// What a lookup comes to.
pub(crate) type Lookup = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// A way of looking host names up: the system's resolver, or a test's.
pub(crate) trait Lookups: Send + Sync + 'static {
    /// The addresses of `host`, each with `port`.
    fn lookup(&self, host: String, port: u16) -> Lookup;
}

/// The system's resolver (`getaddrinfo`, on a blocking thread).
struct System;

impl Lookups for System {
    fn lookup(&self, host: String, port: u16) -> Lookup {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    }
}

/// The addresses of one endpoint. Clones share the lookup in flight and the
/// last answer.
#[derive(Clone)]
pub(crate) struct Resolver {
    shared: Arc<Shared>,
}

struct Shared {
    lookups: Box<dyn Lookups>,
    limit: Duration,
    state: Mutex<State>,
    /// Bumped each time a lookup ends.
    ended: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// A lookup is in flight.
    running: bool,
    /// The addresses of the last lookup that found some.
    last_good: Option<Vec<SocketAddr>>,
    /// Why the last lookup failed, if it did.
    last_failure: Option<(io::ErrorKind, String)>,
    /// Attempts that used `last_good` since the resolver last answered.
    fallbacks: u64,
}

/// What an attempt's wait for the lookup came to.
enum Outcome {
    Answered,
    Failed(io::ErrorKind, String),
    TimedOut,
}

impl Default for Resolver {
    fn default() -> Resolver {
        Resolver::new(Box::new(System), RESOLVE_TIMEOUT)
    }
}

impl Resolver {
    /// A resolver that looks names up with `lookups`, waiting at most `limit`.
    pub(crate) fn new(lookups: Box<dyn Lookups>, limit: Duration) -> Resolver {
        Resolver {
            shared: Arc::new(Shared {
                lookups,
                limit,
                state: Mutex::new(State::default()),
                ended: watch::Sender::new(0),
            }),
        }
    }

    /// The endpoint's addresses, in the resolver's order: see the module docs.
    pub(crate) async fn addresses(&self, endpoint: &Endpoint) -> Result<Vec<SocketAddr>> {
        let (host, port) = (endpoint.host(), endpoint.port());
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let (mut ended, start) = {
            let mut state = self.shared.lock();
            // Marks the lookups ended so far as seen: the next to end is the
            // one in flight, joined or started here.
            let ended = self.shared.ended.subscribe();
            let start = !state.running;
            state.running = true;
            (ended, start)
        };
        // Spawned without the lock: a runtime shutting down drops the task
        // at once, and its drop takes the lock.
        if start {
            let run = Running {
                shared: Arc::clone(&self.shared),
                endpoint: endpoint.to_string(),
                outcome: None,
            };
            tokio::spawn(run.lookup(host.to_string(), port));
        }
        let limit = self.shared.limit;
        let answered = matches!(
            tokio::time::timeout(limit, ended.changed()).await,
            Ok(Ok(()))
        );
        let mut state = self.shared.lock();
        let outcome = match (&state.last_failure, answered) {
            (_, false) => Outcome::TimedOut,
            (Some((kind, why)), true) => Outcome::Failed(*kind, why.clone()),
            (None, true) => Outcome::Answered,
        };
        let fallback = match (outcome, &state.last_good) {
            (Outcome::Answered, Some(addresses)) => return Ok(addresses.clone()),
            (Outcome::Failed(kind, why), None) => {
                return Err(Error::Resolve {
                    endpoint: endpoint.to_string(),
                    host: host.to_string(),
                    source: io::Error::new(kind, why),
                })
            }
            // (A lookup that answered found addresses: not reached.)
            (Outcome::Answered, None) => {
                return Err(Error::Resolve {
                    endpoint: endpoint.to_string(),
                    host: host.to_string(),
                    source: io::Error::new(io::ErrorKind::NotFound, NO_ADDRESS),
                })
            }
            (Outcome::TimedOut, None) => {
                return Err(Error::Timeout {
                    step: Step::Resolve,
                    endpoint: endpoint.to_string(),
                    timeout: limit,
                })
            }
            (Outcome::Failed(_, why), Some(addresses)) => (why, addresses.clone()),
            (Outcome::TimedOut, Some(addresses)) => (
                format!("no answer within {limit:?} (the lookup goes on)"),
                addresses.clone(),
            ),
        };
        let (why, addresses) = fallback;
        state.fallbacks += 1;
        let fallbacks = state.fallbacks;
        drop(state);
        if fallbacks == 1 {
            opentelemetry::otel_warn!(
                name: "djehouty.ResolveFailedUsingLastAddresses",
                endpoint = endpoint.to_string(),
                error = why.as_str(),
                message = "the host name could not be resolved: the addresses it last resolved \
                           to are used; further failures are counted and reported when the \
                           resolver answers again"
            );
        } else {
            opentelemetry::otel_debug!(
                name: "djehouty.ResolveFailedAgain",
                endpoint = endpoint.to_string(),
                error = why.as_str(),
                failures = fallbacks
            );
        }
        Ok(addresses)
    }
}

/// Why a lookup that found nothing failed.
const NO_ADDRESS: &str = "the name has no address";

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A lookup in flight: records its outcome when it ends, or, if its task is
/// dropped first (the runtime shutting down), that it failed, so that the
/// next attempt starts another.
struct Running {
    shared: Arc<Shared>,
    /// For the log.
    endpoint: String,
    outcome: Option<io::Result<Vec<SocketAddr>>>,
}

impl Running {
    async fn lookup(mut self, host: String, port: u16) {
        self.outcome = Some(self.shared.lookups.lookup(host, port).await);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let outcome = self
            .outcome
            .take()
            .unwrap_or_else(|| Err(io::Error::other("the lookup was cancelled")));
        let mut state = self.shared.lock();
        state.running = false;
        let mut recovered = 0;
        match outcome {
            Ok(addresses) if !addresses.is_empty() => {
                state.last_good = Some(addresses);
                state.last_failure = None;
                recovered = std::mem::take(&mut state.fallbacks);
            }
            Ok(_) => {
                state.last_failure = Some((io::ErrorKind::NotFound, NO_ADDRESS.to_string()));
            }
            Err(error) => state.last_failure = Some((error.kind(), error.to_string())),
        }
        // Told under the lock: an attempt that starts the next lookup after
        // this one ended must not take this end for that one's.
        self.shared.ended.send_modify(|n| *n = n.wrapping_add(1));
        drop(state);
        if recovered > 0 {
            opentelemetry::otel_info!(
                name: "djehouty.ResolveRecovered",
                endpoint = std::mem::take(&mut self.endpoint),
                failures = recovered
            );
        }
    }
}

/// A resolver whose answers a test scripts, counting the lookups.
#[cfg(test)]
pub(crate) mod scripted {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Scripted<F> {
        calls: Arc<AtomicUsize>,
        answer: F,
    }

    impl<F: Fn(usize) -> Lookup + Send + Sync + 'static> Lookups for Scripted<F> {
        fn lookup(&self, _host: String, _port: u16) -> Lookup {
            (self.answer)(self.calls.fetch_add(1, Ordering::SeqCst))
        }
    }

    /// A resolver waiting at most `limit`, whose lookup number `n` (from 0)
    /// is `answer(n)`; and the count of lookups started.
    pub(crate) fn resolver<F>(limit: Duration, answer: F) -> (Resolver, Arc<AtomicUsize>)
    where
        F: Fn(usize) -> Lookup + Send + Sync + 'static,
    {
        let calls = Arc::new(AtomicUsize::new(0));
        let lookups = Scripted {
            calls: Arc::clone(&calls),
            answer,
        };
        (Resolver::new(Box::new(lookups), limit), calls)
    }

    /// A lookup answering `answer` after `delay`.
    pub(crate) fn after(delay: Duration, answer: io::Result<Vec<SocketAddr>>) -> Lookup {
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::scripted::{after, resolver};
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn endpoint(text: &str) -> Endpoint {
        Endpoint::parse(text).expect("endpoint")
    }

    fn addresses() -> Vec<SocketAddr> {
        vec![
            "192.0.2.1:12201".parse().expect("address"),
            "[2001:db8::1]:12201".parse().expect("address"),
        ]
    }

    /// A resolver slower than the limit: the attempt fails with a DNS
    /// timeout naming the host, and the next attempt waits for the same
    /// lookup rather than starting another; its late answer is kept for the
    /// attempts after it.
    #[tokio::test(start_paused = true)]
    async fn a_slow_lookup_times_out_naming_dns_and_is_not_started_twice() {
        let (resolver, calls) = resolver(SECOND, |_| after(10 * SECOND, Ok(addresses())));
        let endpoint = endpoint("tcp://slow.example:12201");
        for _ in 0..3 {
            let error = resolver.addresses(&endpoint).await.expect_err("timed out");
            assert!(
                matches!(
                    error,
                    Error::Timeout {
                        step: Step::Resolve,
                        timeout: SECOND,
                        ..
                    }
                ),
                "{error:?}"
            );
            let message = error.to_string();
            assert!(message.contains("DNS"), "{message}");
            assert!(message.contains("slow.example"), "{message}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one lookup in flight");
        // The first lookup answers (10 s after it started); the next
        // attempt starts the second, which is slow too: the first's
        // addresses serve meanwhile.
        tokio::time::sleep(10 * SECOND).await;
        assert_eq!(
            resolver.addresses(&endpoint).await.expect("cached"),
            addresses()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// Attempts made at once through clones (the HTTP client's connector is
    /// cloned per connection) share one lookup.
    #[tokio::test(start_paused = true)]
    async fn clones_share_the_lookup_in_flight() {
        let (resolver, calls) = resolver(5 * SECOND, |_| after(SECOND, Ok(addresses())));
        let other = resolver.clone();
        let endpoint = endpoint("tcp://twice.example:12201");
        let (one, two) = tokio::join!(resolver.addresses(&endpoint), other.addresses(&endpoint));
        assert_eq!(one.expect("resolved"), addresses());
        assert_eq!(two.expect("resolved"), addresses());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// A resolver that fails after answering once: its last answer is used.
    #[tokio::test(start_paused = true)]
    async fn a_failing_lookup_falls_back_to_the_last_answer() {
        let (resolver, calls) = resolver(SECOND, |n| {
            let answer = match n {
                0 => Ok(addresses()),
                _ => Err(io::Error::other("SERVFAIL")),
            };
            after(Duration::from_millis(10), answer)
        });
        let endpoint = endpoint("tcp://flaky.example:12201");
        for _ in 0..3 {
            assert_eq!(
                resolver.addresses(&endpoint).await.expect("resolved"),
                addresses()
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3, "each attempt asks again");
    }

    /// A name that never resolved: the error names the host and DNS, and
    /// says what to check.
    #[tokio::test(start_paused = true)]
    async fn a_name_that_never_resolved_is_named() {
        let (resolver, _) = resolver(SECOND, |n| {
            let answer = match n {
                0 => Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
                _ => Ok(Vec::new()),
            };
            after(Duration::ZERO, answer)
        });
        let endpoint = endpoint("tcp://nowhere.example:12201");
        for detail in ["no such host", NO_ADDRESS] {
            let error = resolver.addresses(&endpoint).await.expect_err("unresolved");
            let Error::Resolve { ref host, .. } = error else {
                panic!("{error:?}");
            };
            assert_eq!(host, "nowhere.example");
            let message = error.to_string();
            for part in [
                "resolve",
                "\"nowhere.example\"",
                detail,
                "DNS",
                "IP address",
            ] {
                assert!(message.contains(part), "{part:?} not in {message}");
            }
        }
    }

    /// A lookup whose task is dropped (its runtime shut down) is not waited
    /// for for ever: the next attempt starts another.
    #[test]
    fn a_dropped_lookup_lets_the_next_attempt_start_another() {
        let (resolver, calls) = resolver(SECOND, |n| match n {
            0 => Box::pin(std::future::pending()),
            _ => after(Duration::ZERO, Ok(addresses())),
        });
        let endpoint = endpoint("tcp://dropped.example:12201");
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime")
        };
        let first = runtime();
        let waiting = {
            let (resolver, endpoint) = (resolver.clone(), endpoint.clone());
            first.spawn(async move { resolver.addresses(&endpoint).await })
        };
        first.block_on(async {
            while calls.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        });
        drop((waiting, first));
        let found = runtime().block_on(resolver.addresses(&endpoint));
        assert_eq!(found.expect("resolved"), addresses());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// IP addresses are used as they are.
    #[tokio::test(start_paused = true)]
    async fn ip_addresses_are_not_looked_up() {
        let (resolver, calls) = resolver(SECOND, |_| after(Duration::ZERO, Ok(Vec::new())));
        for (text, address) in [
            ("tcp://127.0.0.1:5", "127.0.0.1:5"),
            ("tls://[::1]:6", "[::1]:6"),
        ] {
            let found = resolver.addresses(&endpoint(text)).await.expect("address");
            assert_eq!(found, vec![address.parse::<SocketAddr>().expect("address")]);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
