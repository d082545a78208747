//! Retrying source requests: which failures are worth another attempt ([`UpstreamError::is_transient`]) and how
//! long to wait before it ([`RetryPolicy`]: exponential backoff with jitter, bounded in attempts and in total time,
//! a server's `Retry-After` honoured, in seconds or as an HTTP date: [`parse_retry_after`]).
//!
//! Only requests that change nothing are retried, and only from their start: the advertisement here, the pack
//! request by the mirror (`mirror/fetch.rs`), which asks again from the start for a pack that failed or broke
//! off, before anything of the run is published.

use super::UpstreamError;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// The wait a `Retry-After` header value asks for (RFC 9110, section 10.2.3): a number of seconds (one too big
/// for a `u64` saturates, so that the policy's total time refuses it), or an HTTP date ([`parse_http_date`]),
/// counted from `now` (the time the server's `Date` header gives, so that clock skew does not matter), a date
/// already past asking for no wait. `None` for anything else (the backoff applies).
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let value = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = parse_http_date(value.as_bytes(), now)?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait of a response's `Retry-After` header, counted from its `Date` header when that is a valid HTTP date,
/// else from the local clock.
pub(super) fn retry_after_header(headers: &hyper::HeaderMap) -> Option<Duration> {
    let local = SystemTime::now();
    let now = headers
        .get(hyper::header::DATE)
        .and_then(|date| parse_http_date(date.as_bytes(), local))
        .unwrap_or(local);
    parse_retry_after(headers.get(hyper::header::RETRY_AFTER)?.as_bytes(), now)
}

/// Day names of IMF-fixdate and asctime dates.
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
/// Day names of RFC 850 dates.
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
/// Month names, January first.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An HTTP date (RFC 9110, section 5.6.7) in any of its three forms: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37
/// GMT`), the obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37 GMT`, whose two-digit year is the one nearest
/// `now` that is not more than 50 years ahead of it) and the obsolete asctime form (`Sun Nov  6 08:49:37 1994`).
/// Runs of spaces count as one; the day name is not checked against the date. `None` for anything else,
/// impossible dates (`31 Feb`) included.
pub fn parse_http_date(value: &[u8], now: SystemTime) -> Option<SystemTime> {
    let words: Vec<&str> = std::str::from_utf8(value)
        .ok()?
        .split_ascii_whitespace()
        .take(7)
        .collect();
    let (year, month, day, time) = match words[..] {
        [day_name, day, month, year, time, "GMT"] => {
            known(&DAYS, day_name.strip_suffix(',')?)?;
            (
                i64::from(number(year, 4, 4)?),
                month,
                number(day, 2, 2)?,
                time,
            )
        }
        [day_name, date, time, "GMT"] => {
            known(&LONG_DAYS, day_name.strip_suffix(',')?)?;
            let mut parts = date.split('-');
            let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            let (day, year) = (number(day, 2, 2)?, number(year, 2, 2)?);
            (two_digit_year(year, now), month, day, time)
        }
        [day_name, month, day, time, year] => {
            known(&DAYS, day_name)?;
            (
                i64::from(number(year, 4, 4)?),
                month,
                number(day, 1, 2)?,
                time,
            )
        }
        _ => return None,
    };
    let month = MONTHS.iter().position(|&m| m == month)? as u32 + 1;
    let mut hms = time.split(':');
    let (h, m, s) = (hms.next()?, hms.next()?, hms.next()?);
    if hms.next().is_some() {
        return None;
    }
    let (h, m, s) = (number(h, 2, 2)?, number(m, 2, 2)?, number(s, 2, 2)?);
    if day == 0 || day > days_in_month(year, month) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400
        + i64::from(h) * 3600
        + i64::from(m) * 60
        + i64::from(s);
    match u64::try_from(seconds) {
        Ok(after) => UNIX_EPOCH.checked_add(Duration::from_secs(after)),
        Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(seconds.unsigned_abs())),
    }
}

/// `Some` if `word` is one of `names`.
fn known(names: &[&str], word: &str) -> Option<()> {
    names.contains(&word).then_some(())
}

/// `text` as a number of `min` to `max` ASCII digits.
fn number(text: &str, min: usize, max: usize) -> Option<u32> {
    let digits = (min..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten()
}

/// The year a two-digit RFC 850 year means: the one with those last digits nearest `now` and not more than 50
/// years after it.
fn two_digit_year(last_digits: u32, now: SystemTime) -> i64 {
    let now_days = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    // Days since 1970 fit easily in an i64 (SystemTime ends long before).
    let this_year = civil_year(i64::try_from(now_days).unwrap_or(i64::MAX / 2));
    let year = this_year - this_year.rem_euclid(100) + i64::from(last_digits);
    if year > this_year + 50 {
        year - 100
    } else if year <= this_year - 50 {
        year + 100
    } else {
        year
    }
}

/// Days in `month` (1 to 12) of `year`, in the proleptic Gregorian calendar.
fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The year of the day `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`, year only).
fn civil_year(days: i64) -> i64 {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    year_of_era + era * 400 + i64::from(month_from_march >= 10)
}

#[cfg(test)]
mod tests;
