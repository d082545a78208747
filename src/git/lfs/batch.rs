//! The LFS batch API's JSON, for downloads: the request for a group of objects, and what the server answers for
//! each (an action to fetch it, or an error), checked so that the HTTP side only ever sees usable actions.
//!
//! A request is `POST <endpoint>/objects/batch` with `Accept` and `Content-Type` [`CONTENT_TYPE`] and the body
//! of [`download_request`]. The answer lists, per object, `actions.download` (`href`, `header`, and an expiry:
//! `expires_in` seconds from the response, or `expires_at`, an RFC 3339 time) or an `error` with an HTTP-like
//! code (404 missing, 410 removed, 422 invalid). [`parse_download_response`] turns it into one [`Outcome`] per
//! object asked for: an `href` that is not `http`/`https` is refused here, and an object the answer leaves out is
//! an outcome too, never a panic or a silent skip.

use super::{LfsOid, Pointer};
use crate::text::untrusted;
use std::collections::BTreeMap;
use url::Url;

/// Media type of batch requests and responses.
pub const CONTENT_TYPE: &str = "application/vnd.git-lfs+json";
/// Most objects asked for in one batch request (servers commonly accept 100).
pub const MAX_OBJECTS_PER_BATCH: usize = 100;
/// Most characters of server-given text (error messages, bad hrefs) quoted in a message.
const MAX_QUOTED_CHARS: usize = 200;

/// The body of a download batch request for `pointers` (`basic` transfer, SHA-256 ids).
pub fn download_request(pointers: &[Pointer]) -> Vec<u8> {
    let objects: Vec<serde_json::Value> = pointers
        .iter()
        .map(|p| serde_json::json!({"oid": p.oid.to_string(), "size": p.size}))
        .collect();
    let body = serde_json::json!({
        "operation": "download",
        "transfers": ["basic"],
        "objects": objects,
        "hash_algo": "sha256",
    });
    body.to_string().into_bytes()
}

/// Why a batch response as a whole is unusable (per-object problems are [`Outcome`]s instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The body is not the JSON the API defines.
    #[error("the LFS batch response is not valid: {0}")]
    Invalid(String),
    /// The server picked a transfer adapter other than `basic`.
    #[error("the LFS server chose the {0:?} transfer, but only \"basic\" was offered")]
    Transfer(String),
}

/// How to download one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    /// Where to GET it (http or https).
    pub href: Url,
    /// Headers to send with the GET, as the server gave them.
    pub headers: Vec<(String, String)>,
    /// When the action stops working, in seconds since the Unix epoch, if it expires.
    pub expires_at: Option<i64>,
}

/// What the server said about one object asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It can be downloaded so.
    Download(Download),
    /// The server reported an error for it (404: it does not have it; 410: removed; 422: invalid).
    Error {
        /// The error's code.
        code: i64,
        /// The server's message, made safe to show.
        message: String,
    },
    /// The answer is unusable for this object: no download action, an href that is not http(s), or no entry.
    Unusable(String),
}

#[derive(serde::Deserialize)]
struct Response {
    transfer: Option<String>,
    objects: Vec<ResponseObject>,
}

#[derive(serde::Deserialize)]
struct ResponseObject {
    oid: String,
    size: Option<u64>,
    #[serde(default)]
    actions: Option<Actions>,
    #[serde(default)]
    error: Option<ObjectError>,
}

#[derive(serde::Deserialize)]
struct Actions {
    download: Option<Action>,
}

#[derive(serde::Deserialize)]
struct Action {
    href: String,
    #[serde(default)]
    header: BTreeMap<String, String>,
    expires_in: Option<i64>,
    expires_at: Option<String>,
}

#[derive(serde::Deserialize)]
struct ObjectError {
    code: i64,
    #[serde(default)]
    message: String,
}

/// One [`Outcome`] per pointer of `asked`, in that order, from a batch response `body` received at
/// `received_at` (seconds since the Unix epoch; `expires_in` counts from then).
pub fn parse_download_response(
    body: &[u8],
    asked: &[Pointer],
    received_at: i64,
) -> Result<Vec<Outcome>, BatchError> {
    let response: Response = serde_json::from_slice(body)
        .map_err(|e| BatchError::Invalid(untrusted(e.to_string().as_bytes(), MAX_QUOTED_CHARS)))?;
    if let Some(transfer) = response.transfer.filter(|t| t != "basic") {
        return Err(BatchError::Transfer(untrusted(
            transfer.as_bytes(),
            MAX_QUOTED_CHARS,
        )));
    }
    // The first answer for each object counts; answers for objects not asked for are ignored.
    let mut answers: BTreeMap<LfsOid, ResponseObject> = BTreeMap::new();
    for object in response.objects {
        if let Some(oid) = LfsOid::from_hex(object.oid.as_bytes()) {
            answers.entry(oid).or_insert(object);
        }
    }
    Ok(asked
        .iter()
        .map(|p| match answers.get(&p.oid) {
            Some(object) => outcome(object, p, received_at),
            None => Outcome::Unusable("the batch response does not mention it".to_owned()),
        })
        .collect())
}

fn outcome(object: &ResponseObject, pointer: &Pointer, received_at: i64) -> Outcome {
    if let Some(error) = &object.error {
        return Outcome::Error {
            code: error.code,
            message: untrusted(error.message.as_bytes(), MAX_QUOTED_CHARS),
        };
    }
    if object.size.is_some_and(|size| size != pointer.size) {
        return Outcome::Unusable(format!(
            "the server gives its size as {} bytes, the pointer as {}",
            object.size.unwrap_or_default(),
            pointer.size
        ));
    }
    let Some(action) = object.actions.as_ref().and_then(|a| a.download.as_ref()) else {
        return Outcome::Unusable("the server gave no download action".to_owned());
    };
    let href = match Url::parse(&action.href) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => url,
        _ => {
            return Outcome::Unusable(format!(
                "refusing download href {:?}: only http and https URLs are fetched",
                untrusted(action.href.as_bytes(), MAX_QUOTED_CHARS)
            ))
        }
    };
    let expires_at = match (action.expires_in, action.expires_at.as_deref()) {
        (Some(seconds), _) if seconds != 0 => Some(received_at.saturating_add(seconds)),
        (_, Some(at)) => parse_rfc3339(at),
        _ => None,
    };
    Outcome::Download(Download {
        href,
        headers: action
            .header
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        expires_at,
    })
}

/// Seconds since the Unix epoch of an RFC 3339 time (`2016-11-10T15:29:07Z`, `…07.123+01:00`); `None` if it is
/// not one (git-lfs then treats the action as not expiring, and so does the mirror).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let value = |d: &[u8]| i64::from(d[0] - b'0') * 10 + i64::from(d[1] - b'0');
            let minutes = value(&digits[..2]) * 60 + value(&digits[2..]);
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
