//! URLs and credentials of a repository: redaction for messages, the repository base, the credentials its user
//! info and the token make (and the origin they may go to), and how redirects move the repository.

use base64::Engine as _;
use hyper::header::{self, HeaderMap, HeaderValue};
use url::{Origin, Url};

use super::{UpstreamError, ADVERTISEMENT_QUERY};
use crate::text::untrusted;

/// Most characters of an unusable redirect `Location` quoted in an error message.
const MAX_LOCATION_CHARS: usize = 200;

/// Query parameters whose values are shown: git's own `service=git-upload-pack`, never a secret.
const SHOWN_QUERY_KEYS: [&str; 1] = ["service"];

/// A URL as text for messages and logs: any user name and password replaced by `***`, every query value but
/// git's `service` replaced by `***` (`?private_token=***`), and no fragment.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if !url.username().is_empty() || url.password().is_some() {
        // Setting these only fails for URLs without a host, which cannot carry credentials.
        let _ = shown.set_password(None);
        let _ = shown.set_username("***");
    }
    shown.set_fragment(None);
    if let Some(query) = url.query() {
        shown.set_query(Some(&redact_query(query)));
    }
    shown.to_string()
}

/// Like [`redact`] for text that may not even parse as a URL (user input in messages): anything before an `@` in
/// the authority part is replaced by `***`, query values by `***` and a fragment is dropped.
pub fn redact_str(text: &str) -> String {
    if let Some(url) = Url::parse(text).ok().filter(Url::has_host) {
        return redact(&url);
    }
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), text),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    let tail = tail.split_once('#').map_or(tail, |(before, _)| before);
    let tail = match tail.split_once('?') {
        Some((path, query)) => format!("{path}?{}", redact_query(query)),
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

/// A query string with every value replaced by `***`, except those of [`SHOWN_QUERY_KEYS`]; a parameter without
/// `=` may itself be a secret and becomes `***`.
fn redact_query(query: &str) -> String {
    let parameters: Vec<String> = query
        .split('&')
        .map(|parameter| match parameter.split_once('=') {
            Some((key, _)) if SHOWN_QUERY_KEYS.contains(&key) => parameter.to_owned(),
            Some((key, _)) => format!("{key}=***"),
            None if parameter.is_empty() => String::new(),
            None => "***".to_owned(),
        })
        .collect();
    parameters.join("&")
}

/// Credentials for one repository, sent only to the origin they were given for.
#[derive(Clone)]
pub(super) struct Credentials {
    /// The `Authorization` header value (marked sensitive).
    pub(super) header: HeaderValue,
    /// Where the header may be sent.
    pub(super) origin: Origin,
}

impl Credentials {
    /// Whether these credentials may be sent to `url`: only to the origin they were given for.
    pub(super) fn may_go_to(&self, url: &Url) -> bool {
        self.origin == url.origin()
    }
}

/// Validates a repository URL and returns its base: no credentials, no fragment, no trailing
/// slash.
pub(super) fn repo_base(repo: &Url) -> Result<Url, UpstreamError> {
    let invalid = |reason: &str| UpstreamError::InvalidUrl {
        url: redact(repo),
        reason: reason.to_owned(),
    };
    if !matches!(repo.scheme(), "http" | "https") {
        return Err(invalid("only http and https URLs are supported"));
    }
    if repo.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    if repo.query().is_some() {
        return Err(invalid("a repository URL must not have a query string"));
    }
    let mut base = without_credentials(repo);
    let trimmed = base.path().trim_end_matches('/').to_owned();
    base.set_path(&trimmed);
    Ok(base)
}

/// `url` without user name, password and fragment.
pub(super) fn without_credentials(url: &Url) -> Url {
    let mut clean = url.clone();
    // Both only fail for URLs without a host; callers only pass http(s) URLs with one.
    let _ = clean.set_password(None);
    let _ = clean.set_username("");
    clean.set_fragment(None);
    clean
}

/// Basic credentials from the URL's user info and the configured token (see
/// [`UpstreamOptions::token`](super::UpstreamOptions::token)), bound to the URL's origin.
pub(super) fn credentials_for(repo: &Url, token: Option<&str>) -> Option<Credentials> {
    let user = percent_decode(repo.username());
    let password = repo.password().map(percent_decode);
    let (user, password) = match (password, token) {
        (Some(password), _) => (user, password),
        (None, Some(token)) if user.is_empty() => (b"x-access-token".to_vec(), token.into()),
        (None, Some(token)) => (user, token.into()),
        (None, None) if user.is_empty() => return None,
        (None, None) => (user, Vec::new()),
    };
    let mut pair = user;
    pair.push(b':');
    pair.extend_from_slice(&password);
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    // Base64 output is always a valid header value.
    let mut header = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    header.set_sensitive(true);
    Some(Credentials {
        header,
        origin: repo.origin(),
    })
}

/// Decodes `%XX` escapes (URL user info is stored percent-encoded); malformed escapes stay as is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// Resolves a redirect's `Location` against the URL that answered. Credentials in the location
/// are dropped; leaving https for http is refused.
pub(super) fn redirect_target(current: &Url, headers: &HeaderMap) -> Result<Url, UpstreamError> {
    let bad = |reason: String| UpstreamError::BadRedirect {
        url: redact(current),
        reason,
    };
    let location = headers
        .get(header::LOCATION)
        .ok_or_else(|| bad("no Location header".to_owned()))?
        .to_str()
        .map_err(|_| bad("Location header is not ASCII text".to_owned()))?;
    let next = current.join(location).map_err(|error| {
        bad(format!(
            "invalid Location \"{}\": {error}",
            untrusted(redact_str(location).as_bytes(), MAX_LOCATION_CHARS)
        ))
    })?;
    let next = without_credentials(&next);
    match (current.scheme(), next.scheme()) {
        ("https", "http") => Err(UpstreamError::InsecureRedirect {
            url: redact(current),
            location: redact(&next),
        }),
        (_, "http" | "https") if next.host_str().is_some_and(|host| !host.is_empty()) => Ok(next),
        _ => Err(bad(format!(
            "target {} is not an http(s) URL with a host",
            redact(&next)
        ))),
    }
}

/// Git's rule for a redirected advertisement: the final URL must still end with
/// `/info/refs?service=git-upload-pack`, and what precedes it is the new repository base.
pub(super) fn base_after_redirect(final_url: &Url, shown: &str) -> Result<Url, UpstreamError> {
    let base_path = final_url
        .path()
        .strip_suffix("/info/refs")
        .filter(|_| final_url.query() == Some(ADVERTISEMENT_QUERY));
    match base_path {
        Some(path) => {
            let mut base = final_url.clone();
            base.set_query(None);
            base.set_path(path);
            Ok(base)
        }
        None => Err(UpstreamError::BadRedirect {
            url: shown.to_owned(),
            reason: "the redirect target does not end with /info/refs?service=git-upload-pack, \
                     so the repository URL cannot be derived from it"
                .to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests;
