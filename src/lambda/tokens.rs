//! Source tokens from Secrets Manager: read once per invocation, used as the CLI's `--token` is.
//!
//! A mapping (or a request, for all its mappings) names a secret with `token_secret`; the event carries only that
//! name. The secret's string is the token itself, or a JSON object with a `token` field (the shape the Secrets
//! Manager console writes for key/value secrets); surrounding whitespace is dropped. Each secret is read at most
//! once per invocation ([`TokenCache`]), and a failed read fails the mappings that need it, with an error that
//! names the secret and never holds its value. The value goes only into [`MirrorOptions::token`], whose `Debug`
//! redacts it and which the source client sends as HTTP Basic credentials to the repository's origin only.
//!
//! [`MirrorOptions::token`]: crate::MirrorOptions::token

use std::collections::HashMap;

use serde_json::Value;
use tokio::sync::Mutex;

use super::aws::{ServiceError, Services};
use super::event::quote;

/// Why a mapping's token could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Secrets Manager did not answer with the secret.
    #[error("reading the token secret {secret}: {source}")]
    Read {
        /// The secret's id, quoted.
        secret: String,
        /// The service's error.
        source: ServiceError,
    },
    /// The secret holds no usable token.
    #[error("the token secret {secret} {problem}")]
    Unusable {
        /// The secret's id, quoted.
        secret: String,
        /// What is wrong with its value (never the value itself).
        problem: &'static str,
    },
}

/// The token in a secret's string: the string itself, or the `token` field of a JSON object.
pub fn token_from_secret(text: &str) -> Result<String, &'static str> {
    let text = text.trim();
    let token = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(fields)) => match fields.get("token") {
            Some(Value::String(token)) => token.trim().to_owned(),
            _ => return Err("is a JSON object without a string `token` field"),
        },
        _ => text.to_owned(),
    };
    if token.is_empty() {
        return Err("is empty");
    }
    if token.chars().any(char::is_control) {
        return Err("holds control characters, which no HTTP header may carry");
    }
    Ok(token)
}

/// The tokens of one invocation, each secret read at most once (a failed read is remembered too, so a batch of
/// mappings sharing a missing secret makes one call).
pub struct TokenCache<'a, S> {
    services: &'a S,
    read: Mutex<HashMap<String, Result<String, TokenError>>>,
}

impl<S> std::fmt::Debug for TokenCache<'_, S> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("TokenCache { <redacted> }")
    }
}

impl<'a, S: Services> TokenCache<'a, S> {
    /// An empty cache reading through `services`.
    pub fn new(services: &'a S) -> Self {
        TokenCache {
            services,
            read: Mutex::new(HashMap::new()),
        }
    }

    /// The token in secret `id`.
    pub async fn token(&self, id: &str) -> Result<String, TokenError> {
        let mut read = self.read.lock().await;
        if let Some(known) = read.get(id) {
            return known.clone();
        }
        let secret = quote(id);
        let token = match self.services.secret_string(id).await {
            Ok(text) => token_from_secret(&text).map_err(|problem| TokenError::Unusable {
                secret: secret.clone(),
                problem,
            }),
            Err(source) => Err(TokenError::Read { secret, source }),
        };
        read.insert(id.to_owned(), token.clone());
        token
    }
}

#[cfg(test)]
mod tests;
