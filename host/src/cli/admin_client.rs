//! [`AdminClient`]: a running host's admin API from the command line, what
//! `modhost status` and `modhost jobs` share. The host is found from
//! `--url`, else `[server] listen` in the config (a wildcard address is
//! asked on 127.0.0.1); the token from `MODHOST_ADMIN_TOKEN`, else
//! `[admin] token`.

use std::{future::Future, net::Ipv4Addr, time::Duration};

use anyhow::{Context as _, bail};
use serde_json::Value;

use modhost::config::Config;

/// How long a `GET` waits for the whole answer: reads are quick, and a
/// host that is stuck should not hang an operator's terminal.
const GET_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable that overrides `[admin] token`.
const TOKEN_VAR: &str = "MODHOST_ADMIN_TOKEN";

/// The admin API of one host.
pub(crate) struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// The client for the host `url` (else `[server] listen`) with the
    /// token from the environment or `config`.
    pub(crate) fn new(config: &Config, url: Option<String>) -> anyhow::Result<AdminClient> {
        let token = token(std::env::var(TOKEN_VAR).ok(), config.admin.token.clone())?;
        Ok(AdminClient {
            base: base_url(config, url),
            token,
            http: modhost::http_client()?
                .build()
                .context("cannot make an HTTP client")?,
        })
    }

    /// The base URL asked, without a trailing `/`.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `GET base+path`, as JSON; anything but a 2xx is an error.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let request = self.http.get(format!("{}{path}", self.base));
        let (status, body) = self.send(request.timeout(GET_TIMEOUT)).await?;
        if !status.is_success() {
            bail!(
                "{}{path} answered {status}: {body} (is [admin] token the running host's?)",
                self.base
            );
        }
        serde_json::from_str(&body)
            .with_context(|| format!("{}{path} did not answer JSON", self.base))
    }

    /// `POST base+path` with a JSON body, without a time limit (the host
    /// bounds its own answer); the status and the body as text, for the
    /// caller to read its error shape.
    pub(crate) async fn post(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<(reqwest::StatusCode, String)> {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(request).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<(reqwest::StatusCode, String)> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the host at {}: is it running (modhost run) on this config? (or pass --url)",
                    self.base
                )
            })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .context("the host's answer broke off")?;
        Ok((status, body))
    }
}

/// Runs `work` to its end on a runtime of its own: the CLI commands are
/// synchronous and ask one host once.
pub(crate) fn block_on<F: Future>(work: F) -> anyhow::Result<F::Output> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(work))
}

/// `url` without its trailing `/`, else `http://` and `[server] listen`.
fn base_url(config: &Config, url: Option<String>) -> String {
    let base = url.unwrap_or_else(|| {
        let mut listen = config.server.listen;
        if listen.ip().is_unspecified() {
            listen.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{listen}")
    });
    base.trim_end_matches('/').to_owned()
}

/// The environment's token if set and not empty, else the config's.
fn token(from_env: Option<String>, from_config: Option<String>) -> anyhow::Result<String> {
    match from_env {
        Some(t) if !t.is_empty() => Ok(t),
        _ => from_config.with_context(|| {
            format!(
                "no admin token: the config has no [admin] token, so the host serves no admin API to ask; set one (or {TOKEN_VAR})"
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{AdminClient, base_url, token};

    #[test]
    fn the_base_is_the_url_else_listen_with_a_wildcard_asked_on_loopback() {
        let parse = |text: &str| {
            modhost::config::parse(text, Path::new("/tmp/modhost-test/config.toml")).unwrap()
        };
        let wildcard = parse("[server]\nlisten = \"0.0.0.0:9001\"\n");
        assert_eq!(base_url(&wildcard, None), "http://127.0.0.1:9001");
        let fixed = parse("[server]\nlisten = \"127.0.0.2:9002\"\n");
        assert_eq!(base_url(&fixed, None), "http://127.0.0.2:9002");
        assert_eq!(
            base_url(&fixed, Some("https://h.example/".into())),
            "https://h.example"
        );
    }

    /// reqwest has no TLS provider of its own: a client built without the
    /// host's panicked here, and `modhost status` and `modhost jobs` with it.
    #[test]
    fn the_client_builds() {
        let config = modhost::config::parse(
            "[admin]\ntoken = \"t\"\n",
            Path::new("/tmp/modhost-test/config.toml"),
        )
        .unwrap();
        let client = AdminClient::new(&config, Some("https://h.example".into())).unwrap();
        assert_eq!(client.base(), "https://h.example");
    }

    #[test]
    fn the_environment_token_wins_unless_empty_and_none_at_all_says_what_to_set() {
        let env = || Some("from-env".to_owned());
        let config = || Some("from-config".to_owned());
        assert_eq!(token(env(), config()).unwrap(), "from-env");
        assert_eq!(token(Some(String::new()), config()).unwrap(), "from-config");
        assert_eq!(token(None, config()).unwrap(), "from-config");
        let none = token(None, None).unwrap_err().to_string();
        assert!(
            none.contains("[admin] token") && none.contains("MODHOST_ADMIN_TOKEN"),
            "{none}"
        );
    }
}
