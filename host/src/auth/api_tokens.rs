//! The bearer tokens of the HTTP API: `[admin] token` for `/api/*` and
//! `[trigger] tokens` for `POST /trigger/`.
//!
//! They are hashed when the config is applied (start-up and each reload),
//! not per request, so checking a request hashes only what it presented:
//! how long that takes says nothing about a configured token's length, and
//! every digest is compared, so nothing about which one matched either
//! ([`SecretSet`]).

use crate::config::Config;
use crate::util::secret::SecretSet;

/// The HTTP API's tokens of one config, as digests.
#[derive(Debug, Clone, Default)]
pub struct ApiTokens {
    /// `None`: the admin API is off.
    admin: Option<SecretSet>,
    trigger: SecretSet,
    /// `None`: `/metrics` needs no token.
    metrics: Option<SecretSet>,
}

impl ApiTokens {
    /// The digests of `config`'s admin and trigger tokens.
    pub fn new(config: &Config) -> ApiTokens {
        ApiTokens {
            admin: config
                .admin
                .token
                .as_deref()
                .map(|token| SecretSet::new([token])),
            trigger: SecretSet::new(config.trigger.tokens.iter().map(String::as_str)),
            metrics: config
                .metrics
                .token
                .as_deref()
                .map(|token| SecretSet::new([token])),
        }
    }

    /// Whether the admin API is on (`[admin] token` is set).
    pub fn admin_enabled(&self) -> bool {
        self.admin.is_some()
    }

    /// Whether `presented` is the admin token.
    pub fn is_admin(&self, presented: &str) -> bool {
        self.admin
            .as_ref()
            .is_some_and(|set| set.contains(presented))
    }

    /// Whether a request presenting `presented` may read `/metrics`:
    /// always when `[metrics] token` is unset, else only with it.
    pub fn may_scrape(&self, presented: Option<&str>) -> bool {
        match &self.metrics {
            None => true,
            Some(set) => presented.is_some_and(|p| set.contains(p)),
        }
    }

    /// Whether `presented` is one of the trigger tokens.
    pub fn is_trigger(&self, presented: &str) -> bool {
        self.trigger.contains(presented)
    }
}
