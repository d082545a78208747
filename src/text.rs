//! Text for error messages: untrusted text made safe for one line, and an error with its causes as one line.
//!
//! Much of what this crate reports comes from outside: ref names and error lines from a git server, HTTP error
//! pages and header values, lines of files an earlier run (or someone else) left in the store. Shown raw, such
//! text could break a log line in two, move a terminal's cursor with escape sequences, or make a message huge.
//! [`untrusted`] is the one way to show it; each caller picks how many characters are worth showing.

use std::error::Error;

/// Text from outside (a server, a store, an event) made safe for one error line: lossy UTF-8, surrounding white
/// space trimmed, control characters escaped (`\n`, `\u{1b}`), at most `max` characters of the text, `…` when cut.
pub(crate) fn untrusted(raw: &[u8], max: usize) -> String {
    bounded(String::from_utf8_lossy(raw).trim().chars(), max)
}

/// Like [`untrusted`] for prose such as an HTTP error page, where layout means nothing: the words of the text
/// (split at white space and control characters) joined by single spaces.
pub(crate) fn untrusted_words(raw: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut first = true;
    let chars = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .flat_map(|word| {
            let space = (!std::mem::replace(&mut first, false)).then_some(' ');
            space.into_iter().chain(word.chars())
        });
    bounded(chars, max)
}

/// The first `max` of `chars`, control characters escaped, `…` if more followed.
fn bounded(chars: impl Iterator<Item = char>, max: usize) -> String {
    let mut out = String::new();
    for (count, c) in chars.enumerate() {
        if count == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `error` and its sources as one line, `: `-separated, skipping a source whose text its wrapper already ends
/// with (many errors repeat their cause in their own message).
pub(crate) fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut previous = text.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !previous.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        previous = message;
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
