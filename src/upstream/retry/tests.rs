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

/// 1994-11-06 08:49:37 UTC, the example of RFC 9110.
fn rfc_example() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(784_111_777)
}

#[test]
fn the_three_http_date_forms_are_parsed() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000); // November 2023
    for form in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Sun Nov 06 08:49:37 1994",
        "  Sun,  06 Nov 1994 08:49:37 GMT\t",
    ] {
        assert_eq!(
            parse_http_date(form.as_bytes(), now),
            Some(rfc_example()),
            "{form:?}"
        );
    }
    // Leap days, the last second of a day, the last day of a year, before 1970.
    let at = |text: &str| {
        parse_http_date(text.as_bytes(), now).map(|t| match t.duration_since(UNIX_EPOCH) {
            Ok(after) => after.as_secs() as i64,
            Err(before) => -(before.duration().as_secs() as i64),
        })
    };
    assert_eq!(at("Tue, 29 Feb 2000 00:00:00 GMT"), Some(951_782_400));
    assert_eq!(at("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
    assert_eq!(at("Wed, 31 Dec 1969 23:59:59 GMT"), Some(-1));
    assert_eq!(at("Fri, 31 Dec 9999 23:59:59 GMT"), Some(253_402_300_799));
    assert_eq!(at("Sat, 01 Jan 0000 00:00:00 GMT"), Some(-62_167_219_200));
}

#[test]
fn rfc_850_years_are_the_nearest_not_more_than_50_years_ahead() {
    let in_year = |year: i64| {
        let days = super::days_from_civil(year, 6, 1);
        UNIX_EPOCH + Duration::from_secs(days as u64 * 86_400)
    };
    let year_of = |text: &str, now: SystemTime| {
        let t = parse_http_date(text.as_bytes(), now).unwrap();
        let days = t.duration_since(UNIX_EPOCH).unwrap().as_secs() / 86_400;
        super::civil_year(days as i64)
    };
    let date = |yy: &str| format!("Monday, 01-Jan-{yy} 00:00:00 GMT");
    assert_eq!(year_of(&date("94"), in_year(2026)), 1994);
    assert_eq!(year_of(&date("26"), in_year(2026)), 2026);
    assert_eq!(year_of(&date("76"), in_year(2026)), 2076);
    assert_eq!(year_of(&date("77"), in_year(2026)), 1977);
    assert_eq!(year_of(&date("00"), in_year(2099)), 2100);
    assert_eq!(year_of(&date("70"), in_year(1970)), 1970);
}

#[test]
fn garbage_and_impossible_dates_are_not_dates() {
    let now = rfc_example();
    for bad in [
        "",
        "GMT",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06 Nov 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06 Nov 1994 08:49 GMT",
        "Sun, 06 Nov 1994 08:49:37:00 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 23:60:00 GMT",
        "Sun, 06 Nov 1994 23:59:61 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 29 Feb 1900 08:49:37 GMT",
        "Sun, 06 Nov +994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT extra",
        "Sunday, 06-Nov-94-1 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov 106 08:49:37 1994",
        "Sun, 06 Nov 1994 08:49:37 GMT\u{0}",
        "Søn, 06 Nov 1994 08:49:37 GMT",
    ] {
        assert_eq!(parse_http_date(bad.as_bytes(), now), None, "{bad:?}");
        assert_eq!(parse_retry_after(bad.as_bytes(), now), None, "{bad:?}");
    }
    assert_eq!(
        parse_http_date(b"Sun, 06 Nov 1994 08:49:37 \xffGMT", now),
        None
    );
}

#[test]
fn retry_after_is_seconds_or_a_date_counted_from_now() {
    let now = rfc_example();
    let wait = |value: &str| parse_retry_after(value.as_bytes(), now);
    assert_eq!(wait("120"), Some(Duration::from_secs(120)));
    assert_eq!(wait(" 0 "), Some(Duration::ZERO));
    assert_eq!(
        wait("Sun, 06 Nov 1994 08:51:37 GMT"),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        wait("Sunday, 06-Nov-94 08:50:07 GMT"),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        wait("Sun Nov  6 09:49:37 1994"),
        Some(Duration::from_secs(3600))
    );
    // A date already past asks for no wait.
    assert_eq!(wait("Sun, 06 Nov 1994 08:49:36 GMT"), Some(Duration::ZERO));
    assert_eq!(wait("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
    assert_eq!(wait("Sat, 01 Jan 0000 00:00:00 GMT"), Some(Duration::ZERO));
    // Not seconds: signs, fractions, exponents, units.
    for bad in ["-1", "+5", "1.5", "1e3", "5s", "0x10", "1 2", "١٢"] {
        assert_eq!(wait(bad), None, "{bad:?}");
    }
}

#[test]
fn hostile_waits_end_the_retries_instead_of_waiting() {
    let now = rfc_example();
    let policy = RetryPolicy::default();
    let started = Instant::now();
    let huge = "9".repeat(10_000);
    for value in [
        "18446744073709551615",
        "18446744073709551616",
        huge.as_str(),
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "Sun, 06 Nov 1994 08:51:38 GMT",
    ] {
        let wait = parse_retry_after(value.as_bytes(), now).expect(value);
        assert!(wait > policy.max_total, "{value}: {wait:?}");
        assert_eq!(policy.next_delay(1, started, Some(wait)), None, "{value}");
    }
    assert_eq!(
        parse_retry_after(huge.as_bytes(), now),
        Some(Duration::from_secs(u64::MAX))
    );
}

#[test]
fn the_server_clock_counts_for_a_date() {
    use hyper::header::{HeaderMap, HeaderValue, DATE, RETRY_AFTER};
    let mut headers = HeaderMap::new();
    headers.insert(
        RETRY_AFTER,
        HeaderValue::from_static("Sun, 06 Nov 1994 08:50:37 GMT"),
    );
    headers.insert(
        DATE,
        HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
    );
    // Decades behind the local clock, but one minute ahead of the server's.
    assert_eq!(retry_after_header(&headers), Some(Duration::from_secs(60)));
    headers.insert(DATE, HeaderValue::from_static("yesterday"));
    assert_eq!(retry_after_header(&headers), Some(Duration::ZERO));
    headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
    assert_eq!(retry_after_header(&headers), Some(Duration::from_secs(7)));
    headers.remove(RETRY_AFTER);
    assert_eq!(retry_after_header(&headers), None);
}
