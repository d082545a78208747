//! Retrying source requests: which failures are worth another attempt ([`UpstreamError::is_transient`]) and how
//! long to wait before it ([`RetryPolicy`]: exponential backoff with jitter, bounded in attempts and in total time,
//! a server's `Retry-After` honoured).
//!
//! Only requests that change nothing are retried, and only from their start: the advertisement here, the pack
//! request by the mirror (`mirror/fetch.rs`), which asks again from the start for a pack that failed or broke
//! off, before anything of the run is published.

use super::UpstreamError;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// How a failed source request is retried. Each retry is logged with its cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts of one request, the first included (1: never retry).
    pub max_attempts: u32,
    /// Wait before the first retry; it doubles for each further retry, up to `max_delay`. The actual wait is
    /// drawn between half of it and all of it (jitter), so that runs failing together do not retry together.
    pub first_delay: Duration,
    /// Longest wait between two attempts (a server's `Retry-After` may ask for more, within `max_total`).
    pub max_delay: Duration,
    /// No retry is started whose wait would end later than this after the first attempt started.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, waits of about 1, 2 and 4 s, everything within 2 minutes.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_total: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// How long to wait before the next attempt, after `failed` attempts (at least 1) of which the last ended with
    /// `error`, the first having started at `started`; `None` when there is to be no further attempt: the error
    /// is not transient, or the attempts or the time are used up.
    pub fn delay_after(
        &self,
        error: &UpstreamError,
        failed: u32,
        started: Instant,
    ) -> Option<Duration> {
        if !error.is_transient() {
            return None;
        }
        self.next_delay(failed, started, error.retry_after())
    }

    /// Like [`RetryPolicy::delay_after`] for a failure the caller found transient, with the wait the server
    /// asked for, if any.
    pub fn next_delay(
        &self,
        failed: u32,
        started: Instant,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if failed >= self.max_attempts {
            return None;
        }
        let delay = retry_after.unwrap_or_else(|| jittered(self.backoff(failed)));
        (started.elapsed().saturating_add(delay) <= self.max_total).then_some(delay)
    }

    /// The wait before retry number `retry` (from 1) without jitter.
    fn backoff(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(30);
        self.first_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }
}

/// A wait drawn uniformly between half of `delay` and `delay`.
fn jittered(delay: Duration) -> Duration {
    let half = delay / 2;
    let spread = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    // A freshly keyed SipHash of nothing is a random number: std's own per-process randomness, no extra crate.
    let random = RandomState::new().build_hasher().finish();
    half + Duration::from_nanos(random % spread.saturating_add(1))
}

impl UpstreamError {
    /// Whether the failure may well not happen again: no connection, a connection that broke, a server that did
    /// not answer in time, or HTTP 408, 429, 500, 502, 503 and 504. Refusals (401, 403, 404, redirects, TLS,
    /// a wrong content type, a limit) are not.
    pub fn is_transient(&self) -> bool {
        match self {
            UpstreamError::ConnectionRefused { .. }
            | UpstreamError::ConnectTimeout { .. }
            | UpstreamError::Connect { .. }
            | UpstreamError::Request { .. }
            | UpstreamError::ResponseTimeout { .. }
            | UpstreamError::IdleTimeout { .. }
            | UpstreamError::Body { .. } => true,
            UpstreamError::Status { status, .. } => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            _ => false,
        }
    }

    /// The wait a 429 or 503 asked for with `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
