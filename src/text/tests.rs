use super::*;
use std::fmt;

#[test]
fn untrusted_is_bounded_and_escaped() {
    assert_eq!(
        untrusted(b"  fatal: bad\r\n\tthing \xff\n", 500),
        "fatal: bad\\r\\n\\tthing \u{fffd}"
    );
    assert_eq!(
        untrusted(b"refs/heads/\x1b[31m", 500),
        "refs/heads/\\u{1b}[31m"
    );
    let long = untrusted(&[b'a'; 10_000], 500);
    assert_eq!(long.len(), 500 + "…".len());
    assert!(long.ends_with("a…"));
    // Exactly `max` characters are kept whole; the limit counts characters, not bytes.
    assert_eq!(untrusted(b"abc", 3), "abc");
    assert_eq!(untrusted("héllo".as_bytes(), 2), "hé…");
    assert_eq!(untrusted(b"", 10), "");
}

#[test]
fn untrusted_words_folds_layout_and_control_characters() {
    assert_eq!(
        untrusted_words(b"  bad\r\n\tthing\x00\x1b[31m \xff ", 500),
        "bad thing [31m \u{fffd}"
    );
    assert_eq!(untrusted_words(b"one two three", 7), "one two…");
    assert_eq!(untrusted_words(b" \r\n ", 10), "");
}

/// An error with a message and an optional cause.
#[derive(Debug)]
struct Layer(&'static str, Option<Box<Layer>>);

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Error for Layer {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.1
            .as_deref()
            .map(|cause| cause as &(dyn Error + 'static))
    }
}

fn chain(messages: &[&'static str]) -> Layer {
    let mut layers = messages.iter().rev();
    let innermost = Layer(layers.next().copied().unwrap_or(""), None);
    layers.fold(innermost, |cause, &message| {
        Layer(message, Some(Box::new(cause)))
    })
}

#[test]
fn error_chain_joins_causes_and_drops_repeats() {
    assert_eq!(error_chain(&chain(&["alone"])), "alone");
    assert_eq!(
        error_chain(&chain(&[
            "dispatch failure",
            "io error",
            "connection reset"
        ])),
        "dispatch failure: io error: connection reset"
    );
    // A cause that its wrapper already quotes, in full or at its end, is not repeated.
    assert_eq!(
        error_chain(&chain(&[
            "request failed: timed out",
            "timed out",
            "timed out"
        ])),
        "request failed: timed out"
    );
    // A cause is compared with its own wrapper only: an earlier repeat does not hide it.
    assert_eq!(error_chain(&chain(&["a: x", "y", "x"])), "a: x: y: x");
}
