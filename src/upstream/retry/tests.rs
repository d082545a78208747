use super::*;

fn status(status: u16, retry_after: Option<u64>) -> UpstreamError {
    UpstreamError::Status {
        url: "https://example.com/r".into(),
        status,
        body: String::new(),
        retry_after: retry_after.map(Duration::from_secs),
    }
}

fn refused() -> UpstreamError {
    UpstreamError::ConnectionRefused {
        url: "https://example.com/r".into(),
    }
}

#[test]
fn transient_failures_are_told_from_refusals() {
    for code in [408, 429, 500, 502, 503, 504] {
        assert!(status(code, None).is_transient(), "{code}");
    }
    for code in [400, 401, 403, 404, 410, 501] {
        assert!(!status(code, None).is_transient(), "{code}");
    }
    assert!(refused().is_transient());
    let url = "u".to_owned();
    assert!(UpstreamError::Body {
        url: url.clone(),
        detail: "connection reset".into()
    }
    .is_transient());
    assert!(!UpstreamError::NotFound { url: url.clone() }.is_transient());
    assert!(!UpstreamError::AdvertisementTooLarge { url, limit: 1 }.is_transient());
}

#[test]
fn waits_double_with_jitter_and_stop_after_the_attempts() {
    let policy = RetryPolicy {
        max_attempts: 5,
        first_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(5),
        max_total: Duration::from_secs(3600),
    };
    let started = Instant::now();
    for (failed, full) in [(1, 2), (2, 4), (3, 5), (4, 5)] {
        let delay = policy.delay_after(&refused(), failed, started).unwrap();
        let full = Duration::from_secs(full);
        assert!(delay >= full / 2 && delay <= full, "{failed}: {delay:?}");
    }
    assert_eq!(policy.delay_after(&refused(), 5, started), None);
    assert_eq!(
        RetryPolicy::never().delay_after(&refused(), 1, started),
        None
    );
}

#[test]
fn jitter_spreads_the_waits() {
    let delays: std::collections::HashSet<Duration> =
        (0..20).map(|_| jittered(Duration::from_secs(10))).collect();
    assert!(delays.len() > 1, "{delays:?}");
    assert_eq!(jittered(Duration::ZERO), Duration::ZERO);
}

#[test]
fn refusals_are_not_retried() {
    let policy = RetryPolicy::default();
    assert_eq!(
        policy.delay_after(&status(404, None), 1, Instant::now()),
        None
    );
}

#[test]
fn retry_after_is_honoured_within_the_total_time() {
    let policy = RetryPolicy::default();
    let started = Instant::now();
    assert_eq!(
        policy.delay_after(&status(503, Some(7)), 1, started),
        Some(Duration::from_secs(7))
    );
    // A wait longer than the time left ends the retries now rather than after waiting in vain.
    assert_eq!(
        policy.delay_after(&status(429, Some(3600)), 1, started),
        None
    );
}

#[test]
fn no_retry_starts_after_the_total_time() {
    let policy = RetryPolicy {
        max_total: Duration::from_secs(10),
        ..RetryPolicy::default()
    };
    let long_ago = Instant::now().checked_sub(Duration::from_secs(11)).unwrap();
    assert_eq!(policy.delay_after(&refused(), 1, long_ago), None);
}
