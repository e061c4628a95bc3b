//! config.toml → [`Config`].
//!
//! # Layout
//! - `model`: the validated types every part of the host reads
//! - `raw`: the file's shape (serde, `deny_unknown_fields`) and its
//!   validation into `model` (defaults, bounds, relative paths resolved)
//! - `error`: [`ConfigError`], `path:line:column: message` plus a hint
//! - `diff`: what changed between two configs, for live reload
//!
//! Reading a file takes two stages (STYLE.md habit 13): the text is parsed
//! into a spanned TOML document and deserialized into `raw::RawConfig`, then
//! validated into [`Config`]. The spanned document is kept alongside so that
//! every error, including validation errors found long after parsing, points
//! at the line of the key it is about.
//!
//! `[modules.<name>]` tables are passed through untouched (as JSON) apart
//! from the two keys the host reads itself, `enabled` and `call_timeout_ms`.

mod diff;
mod error;
mod model;
mod raw;
pub mod watch;

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use serde::Deserialize;

pub use diff::{describe_changes, restart_required};
pub use error::{ConfigError, Diagnostic, MAX_CONFIG_BYTES, Position};
pub use model::*;

/// The repository's config.toml, compiled in: what `modhost run` uses when
/// no file is given (and what the quickstart runs on). A unit test keeps it
/// parsing.
const EMBEDDED: &str = include_str!("../../../config.toml");

/// Read and validate the config file at `path`.
///
/// Relative paths inside it resolve against the file's folder. Files larger
/// than [`MAX_CONFIG_BYTES`] are refused before they are read in full.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let shown = absolute(path);
    let io = |io| ConfigError::Io {
        path: shown.clone(),
        io,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // `take` bounds the read even if the file grows while we read it.
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() > MAX_CONFIG_BYTES {
        let len = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            len,
        });
    }
    match String::from_utf8(bytes) {
        Ok(text) => parse(&text, path),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]);
            let ctx = error::Ctx {
                path,
                text: &prefix,
                doc: None,
            };
            Err(ctx.not_utf8(valid))
        }
    }
}

/// Validate config text that was read from `path`.
///
/// `path` names the file in error messages and anchors relative paths:
/// they resolve against `path.parent()`, made absolute with the current
/// directory if needed. The file itself is not touched.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let source = absolute(path);
    // `path` names a file; only a path without a file name (`""`, `/`) is
    // taken as the folder itself.
    let base = match (path.file_name(), source.parent()) {
        (Some(_), Some(parent)) => parent.to_path_buf(),
        _ => source.clone(),
    };
    let mut config = parse_with_base(text, path, &base)?;
    config.source = Some(source);
    Ok(config)
}

/// The embedded default config (the repository's config.toml), with its
/// relative paths resolved against `base_dir` and `source: None`.
pub fn embedded_default(base_dir: &Path) -> Config {
    let base = absolute(base_dir);
    parse_with_base(EMBEDDED, Path::new("<embedded config.toml>"), &base)
        .expect("the embedded config.toml is valid (checked by a unit test)")
}

/// `path` made absolute against the current folder, without touching the
/// file system otherwise (no symlinks resolved; the file need not exist).
fn absolute(path: &Path) -> PathBuf {
    if path.as_os_str().is_empty() {
        return std::env::current_dir().unwrap_or_default();
    }
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Both stages; `path` is only used in messages, `base` anchors relative paths.
fn parse_with_base(text: &str, path: &Path, base: &Path) -> Result<Config, ConfigError> {
    let mut ctx = error::Ctx {
        path,
        text,
        doc: None,
    };
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            len: text.len() as u64,
        });
    }
    let doc = toml::de::DeTable::parse(text).map_err(|e| ctx.syntax(&e))?;
    ctx.doc = Some(doc.get_ref());
    // The deserializer consumes its document; keep ours for error locations.
    let raw = raw::RawConfig::deserialize(toml::de::Deserializer::from(doc.clone()))
        .map_err(|e| ctx.serde(&e))?;
    raw.validate(base).map_err(|p| p.into_error(&ctx))
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use serde_json::json;

    use super::*;

    const BASE: &str = "/srv/modhost";

    fn cfg_path() -> PathBuf {
        Path::new(BASE).join("config.toml")
    }

    fn ok(text: &str) -> Config {
        match parse(text, &cfg_path()) {
            Ok(c) => c,
            Err(e) => panic!("expected a valid config, got:\n{e}"),
        }
    }

    /// Parse `text`, expect an error, and return it with its Display.
    fn err(text: &str) -> (ConfigError, String) {
        match parse(text, &cfg_path()) {
            Ok(c) => panic!("expected an error, got {c:#?}"),
            Err(e) => {
                let shown = e.to_string();
                (e, shown)
            }
        }
    }

    /// The error is a validation error on `line` whose message mentions
    /// `needle`, shown as `path:line:col: ...` with a hint.
    fn invalid_at(text: &str, line: usize, needle: &str) -> String {
        let (e, shown) = err(text);
        assert!(matches!(e, ConfigError::Invalid(_)), "not Invalid: {shown}");
        assert_eq!(e.line(), Some(line), "{shown}");
        assert!(
            shown.starts_with(&format!("{}:{line}:", cfg_path().display())),
            "{shown}"
        );
        assert!(shown.contains(needle), "{needle:?} not in: {shown}");
        assert!(shown.contains("\nhint: "), "no hint: {shown}");
        shown
    }

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    const FULL: &str = r#"
[server]
listen = "0.0.0.0:9000"
idle_timeout_secs = 60
resume_grace_secs = 0

[admin]
token = "s3cret-admin"

[auth]
bootstrap_url = "https://auth.example.com/api/bootstrap/"

[[auth.tokens]]
token = "alice-secret"
user = "alice"
roles = ["user"]
allowed_rooms = [{ target = "message", customer = "*" }, { target = "n", id = 7, ok = true }]

[[auth.tokens]]
token = "bob-secret"
user = "bob"

[auth.jwt]
secret = "hs-secret"
jwks_file = "keys/jwks.json"
issuer = "https://sso.example.com"
audience = "modhost"
roles_claim = "realm_access.roles"
leeway_secs = 10

[trigger]
tokens = ["t1", "t2"]

[limits]
max_frame_bytes = 1024
max_json_depth = 8
max_subscriptions = 10
send_queue = 2048
max_connections = 100
calls_per_second = 50
max_calls_in_flight = 4
call_timeout_ms = 1500
max_params_bytes = 512
module_queue = 16
resume_buffer = 32

[modules]
dir = "../mods"
verify_keys = "/etc/modhost/keys"
state_dir = "./state"
allow_rollback = true

[modules.notes]
enabled = false
call_timeout_ms = 2000
max_notes_per_user = 100
ratio = 0.5
tags = ["a", "b"]
since = 1979-05-27T07:32:00Z
nested = { deep = { x = 1 } }

[diagnostics]
ws_echo_path = "/echo"
"#;

    #[test]
    fn full_example_parses_to_the_expected_config() {
        let c = ok(FULL);
        let expected = Config {
            source: Some(cfg_path()),
            server: ServerConfig {
                listen: "0.0.0.0:9000".parse().unwrap(),
                idle_timeout: Duration::from_secs(60),
                resume_grace: Duration::ZERO,
            },
            admin: AdminConfig {
                token: Some("s3cret-admin".into()),
            },
            auth: AuthConfig {
                tokens: vec![
                    StaticToken {
                        token: "alice-secret".into(),
                        user: "alice".into(),
                        roles: vec!["user".into()],
                        allowed_rooms: vec![
                            json!({"target": "message", "customer": "*"}),
                            json!({"target": "n", "id": 7, "ok": true}),
                        ],
                    },
                    StaticToken {
                        token: "bob-secret".into(),
                        user: "bob".into(),
                        roles: vec!["user".into()],
                        allowed_rooms: vec![],
                    },
                ],
                jwt: Some(JwtConfig {
                    secret: Some("hs-secret".into()),
                    jwks_file: Some(p("/srv/modhost/keys/jwks.json")),
                    issuer: Some("https://sso.example.com".into()),
                    audience: vec!["modhost".into()],
                    user_claim: "sub".into(),
                    roles_claim: "realm_access.roles".into(),
                    rooms_claim: "allowed_rooms".into(),
                    leeway: Duration::from_secs(10),
                }),
                bootstrap: Some(BootstrapConfig {
                    url: "https://auth.example.com/api/bootstrap/".into(),
                    timeout: Duration::from_millis(5000),
                }),
            },
            trigger: TriggerConfig {
                tokens: vec!["t1".into(), "t2".into()],
            },
            limits: Limits {
                max_frame_bytes: 1024,
                max_json_depth: 8,
                max_subscriptions: 10,
                send_queue: 2048,
                max_connections: 100,
                calls_per_second: 50,
                max_calls_in_flight: 4,
                call_timeout: Duration::from_millis(1500),
                max_params_bytes: 512,
                module_queue: 16,
                resume_buffer: 32,
            },
            modules: ModulesConfig {
                dir: p("/srv/modhost/../mods"),
                verify_keys: vec![p("/etc/modhost/keys")],
                state_dir: p("/srv/modhost/state"),
                allow_rollback: true,
                settings: BTreeMap::from([(
                    "notes".to_owned(),
                    ModuleSettings {
                        enabled: false,
                        call_timeout: Some(Duration::from_millis(2000)),
                        publishes_per_second: None,
                        config: json!({
                            "max_notes_per_user": 100,
                            "ratio": 0.5,
                            "tags": ["a", "b"],
                            "since": "1979-05-27T07:32:00Z",
                            "nested": {"deep": {"x": 1}},
                        }),
                    },
                )]),
            },
            diagnostics: Diagnostics {
                ws_echo_path: Some("/echo".into()),
            },
        };
        assert_eq!(c, expected);
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let c = ok("");
        assert_eq!(c.server.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.server.idle_timeout, Duration::from_secs(300));
        assert_eq!(c.server.resume_grace, Duration::from_secs(30));
        assert_eq!(c.admin.token, None);
        assert_eq!(c.auth, AuthConfig::default());
        assert_eq!(c.trigger, TriggerConfig::default());
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.modules.dir, p("/srv/modhost/plugins"));
        assert_eq!(c.modules.verify_keys, vec![p("/srv/modhost/verify_keys")]);
        assert_eq!(c.modules.state_dir, p("/srv/modhost/.modhost/state"));
        assert!(!c.modules.allow_rollback);
        assert!(c.modules.settings.is_empty());
        assert_eq!(c.diagnostics, Diagnostics::default());
        assert_eq!(c.source, Some(cfg_path()));
    }

    #[test]
    fn jwt_defaults() {
        let jwt = ok("[auth.jwt]\nsecret = \"x\"\n").auth.jwt.unwrap();
        assert_eq!(jwt.user_claim, "sub");
        assert_eq!(jwt.roles_claim, "roles");
        assert_eq!(jwt.rooms_claim, "allowed_rooms");
        assert_eq!(jwt.leeway, Duration::from_secs(30));
        assert!(jwt.audience.is_empty() && jwt.jwks_file.is_none() && jwt.issuer.is_none());
    }

    #[test]
    fn bootstrap_table_form() {
        let b = ok("[auth.bootstrap]\nurl = \"http://127.0.0.1:8000/b/\"\ntimeout_ms = 250\n")
            .auth
            .bootstrap
            .unwrap();
        assert_eq!(b.url, "http://127.0.0.1:8000/b/");
        assert_eq!(b.timeout, Duration::from_millis(250));
    }

    #[test]
    fn relative_paths_resolve_against_the_files_folder() {
        let text = "[modules]\ndir = \"mods\"\nverify_keys = [\"keys\", \"./more/keys\", \"/abs\"]\nstate_dir = \".\"\n[auth.jwt]\njwks_file = \"jwks.json\"\n";
        let c = parse(text, Path::new("/etc/modhost/site.toml")).unwrap();
        assert_eq!(c.modules.dir, p("/etc/modhost/mods"));
        assert_eq!(
            c.modules.verify_keys,
            vec![
                p("/etc/modhost/keys"),
                p("/etc/modhost/more/keys"),
                p("/abs")
            ]
        );
        assert_eq!(c.modules.state_dir, p("/etc/modhost"));
        assert_eq!(
            c.auth.jwt.unwrap().jwks_file,
            Some(p("/etc/modhost/jwks.json"))
        );
        assert_eq!(c.source, Some(p("/etc/modhost/site.toml")));

        // A relative config path is made absolute with the current folder.
        let c = parse("", Path::new("conf/modhost.toml")).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(c.modules.dir, cwd.join("conf/plugins"));
        assert_eq!(c.source, Some(cwd.join("conf/modhost.toml")));
    }

    #[test]
    fn verify_keys_takes_a_string_or_an_array() {
        let one = ok("[modules]\nverify_keys = \"keys\"\n");
        let many = ok("[modules]\nverify_keys = [\"keys\"]\n");
        assert_eq!(one.modules.verify_keys, vec![p("/srv/modhost/keys")]);
        assert_eq!(one.modules.verify_keys, many.modules.verify_keys);
        invalid_at("[modules]\nverify_keys = []\n", 2, "verify_keys is empty");
        let (e, shown) = err("[modules]\nverify_keys = 3\n");
        assert!(
            matches!(e, ConfigError::Type(_)) && e.line() == Some(2),
            "{shown}"
        );
    }

    #[test]
    fn module_tables_lose_host_keys_and_keep_the_rest_as_json() {
        let c = ok(
            "[modules.echo]\nenabled = true\ncall_timeout_ms = 5\npublishes_per_second = 7\ngreeting = \"hi\"\nn = [1, 2.5, false]\n[modules.empty]\n",
        );
        let echo = &c.modules.settings["echo"];
        assert!(echo.enabled);
        assert_eq!(echo.call_timeout, Some(Duration::from_millis(5)));
        assert_eq!(echo.publishes_per_second, Some(7));
        assert_eq!(c.modules.settings["empty"].publishes_per_second, None);
        assert_eq!(echo.config, json!({"greeting": "hi", "n": [1, 2.5, false]}));
        assert_eq!(c.modules.settings["empty"].config, json!({}));
        assert_eq!(c.modules.settings_for("other").config, json!({}));
    }

    #[test]
    fn module_names_and_reserved_keys() {
        invalid_at("[modules.Notes]\nx = 1\n", 1, "not a module name");
        let long = "a".repeat(65);
        invalid_at(&format!("\n[modules.{long}]\n"), 2, "not a module name");
        // A reserved key written as a module table.
        let (e, shown) = err("[modules.dir]\nx = 1\n");
        assert!(matches!(e, ConfigError::Type(_)), "{shown}");
        assert!(shown.contains("cannot be a module name"), "{shown}");
        assert_eq!(e.line(), Some(1), "{shown}");
        // A typo of a setting is an unknown key, with a suggestion.
        let (e, shown) = err("[modules]\n\ndri = \"plugins\"\n");
        assert!(matches!(e, ConfigError::UnknownKey(_)), "{shown}");
        assert_eq!(e.line(), Some(3), "{shown}");
        assert!(shown.contains("did you mean `dir`?"), "{shown}");
        assert!(shown.contains("[modules.dri]"), "{shown}");
        // Host keys are type-checked on their own line.
        let (e, shown) = err("[modules.notes]\nx = 1\nenabled = \"yes\"\n");
        assert!(
            matches!(e, ConfigError::Type(_)) && e.line() == Some(3),
            "{shown}"
        );
        invalid_at("[modules.notes]\ncall_timeout_ms = 0\n", 2, "too small");
        invalid_at(
            "[modules.notes]\ncall_timeout_ms = 3600001\n",
            2,
            "too large",
        );
        invalid_at("[modules.notes]\nx = { y = nan }\n", 2, "no JSON form");
        invalid_at(
            "[modules.notes]\npublishes_per_second = 0\n",
            2,
            "too small",
        );
        invalid_at(
            "[modules.notes]\npublishes_per_second = 10000001\n",
            2,
            "too large",
        );
        let (e, shown) = err("[modules.notes]\npublishes_per_second = \"5\"\n");
        assert!(
            matches!(e, ConfigError::Type(_)) && e.line() == Some(2),
            "{shown}"
        );
    }

    #[test]
    fn unknown_keys_name_the_table_and_suggest() {
        let (e, shown) = err("[server]\nlisen = \"127.0.0.1:8080\"\n");
        assert!(matches!(e, ConfigError::UnknownKey(_)), "{shown}");
        assert_eq!(e.line(), Some(2), "{shown}");
        assert_eq!(
            shown,
            "/srv/modhost/config.toml:2:1: unknown key `lisen` in [server]\nhint: did you mean `listen`? keys allowed in [server]: listen, idle_timeout_secs, resume_grace_secs"
        );
        // Top level, nested tables and array-of-tables entries.
        let (_, shown) = err("[srever]\n");
        assert!(
            shown.contains("unknown key `srever` in the top level")
                && shown.contains("did you mean `server`?"),
            "{shown}"
        );
        let (e, shown) = err(
            "[[auth.tokens]]\ntoken = \"a\"\nuser = \"u\"\n[[auth.tokens]]\ntoken = \"b\"\nuser = \"v\"\nrole = [\"x\"]\n",
        );
        assert_eq!(e.line(), Some(7), "{shown}");
        assert!(
            shown.contains("in [[auth.tokens]] entry 2") && shown.contains("did you mean `roles`?"),
            "{shown}"
        );
        let (e, shown) = err("[auth.jwt]\nsecret = \"x\"\nleeway = 3\n");
        assert_eq!(e.line(), Some(3), "{shown}");
        assert!(
            shown.contains("in [auth.jwt]") && shown.contains("leeway_secs"),
            "{shown}"
        );
        // Far from everything: no guess, but the list.
        let (_, shown) = err("[limits]\nfoo = 1\n");
        assert!(
            !shown.contains("did you mean") && shown.contains("send_queue"),
            "{shown}"
        );
        // TLS is not supported yet: an unknown key, not silently ignored.
        let (e, _) = err("[server]\ntls = { cert = \"a\", key = \"b\" }\n");
        assert!(matches!(e, ConfigError::UnknownKey(_)));
    }

    #[test]
    fn syntax_and_type_errors_have_lines() {
        let (e, shown) = err("[server]\nlisten = 127.0.0.1:8080\n");
        assert!(matches!(e, ConfigError::Syntax(_)), "{shown}");
        assert_eq!(e.line(), Some(2), "{shown}");
        assert!(
            shown.contains("hint: if this is text, put it in quotes: listen = \"127.0.0.1:8080\""),
            "{shown}"
        );
        let (e, shown) = err("a = 1\n[server]\n[server]\n");
        assert!(
            matches!(e, ConfigError::Syntax(_)) && e.line() == Some(3),
            "{shown}"
        );
        assert!(shown.contains("duplicate key `server`"), "{shown}");
        let (e, shown) = err("[server]\n\nlisten = 8080\n");
        assert!(matches!(e, ConfigError::Type(_)), "{shown}");
        assert_eq!(e.line(), Some(3), "{shown}");
        assert!(shown.contains("server.listen"), "{shown}");
        let (e, shown) = err("[limits]\nsend_queue = -1\n");
        assert!(
            matches!(e, ConfigError::Type(_)) && e.line() == Some(2),
            "{shown}"
        );
        assert!(shown.contains("cannot be negative"), "{shown}");
        let (e, shown) = err("[[auth.tokens]]\ntoken = \"a\"\n");
        assert!(
            matches!(e, ConfigError::Type(_)) && shown.contains("missing field `user`"),
            "{shown}"
        );
        assert_eq!(e.line(), Some(1), "{shown}");
    }

    #[test]
    fn listen_must_be_a_socket_address() {
        invalid_at(
            "[server]\nlisten = \"localhost:8080\"\n",
            2,
            "not a socket address",
        );
        let shown = invalid_at(
            "[server]\nlisten = \"127.0.0.1\"\n",
            2,
            "not a socket address",
        );
        assert!(shown.contains("add a port"), "{shown}");
        assert_eq!(
            ok("[server]\nlisten = \"[::1]:80\"\n").server.listen.port(),
            80
        );
    }

    #[test]
    fn limits_refuse_zero_and_absurd_values() {
        invalid_at("[limits]\nmax_frame_bytes = 255\n", 2, "at least 256");
        invalid_at("[limits]\nmax_frame_bytes = 67108865\n", 2, "too large");
        invalid_at("[limits]\n\nsend_queue = 0\n", 3, "send_queue = 0");
        invalid_at("[limits]\ncalls_per_second = 0\n", 2, "too small");
        invalid_at("[limits]\ncall_timeout_ms = 0\n", 2, "too small");
        invalid_at("[limits]\ncall_timeout_ms = 3600001\n", 2, "too large");
        invalid_at("[limits]\nmax_json_depth = 0\n", 2, "too small");
        invalid_at("[limits]\nmax_json_depth = 513\n", 2, "too large");
        invalid_at("[server]\nidle_timeout_secs = 0\n", 2, "too small");
        let c = ok(
            "[limits]\nmax_frame_bytes = 67108864\nmax_json_depth = 512\ncall_timeout_ms = 3600000\n",
        );
        assert_eq!(c.limits.max_frame_bytes, 64 * 1024 * 1024);
    }

    #[test]
    fn tokens_must_be_non_empty_and_unique() {
        invalid_at("[admin]\ntoken = \"\"\n", 2, "admin.token is empty");
        invalid_at(
            "[[auth.tokens]]\ntoken = \"\"\nuser = \"a\"\n",
            2,
            "auth.tokens[0].token is empty",
        );
        invalid_at(
            "[[auth.tokens]]\ntoken = \"x\"\nuser = \"\"\n",
            3,
            "user is empty",
        );
        invalid_at(
            "[trigger]\ntokens = [\"a\", \"\"]\n",
            2,
            "trigger.tokens[1] is empty",
        );
        invalid_at("[trigger]\ntokens = [\"a\", \"a\"]\n", 2, "repeats");
        invalid_at("[auth.jwt]\nsecret = \"\"\n", 2, "secret is empty");
        invalid_at("[admin]\ntoken = \" padded \"\n", 2, "whitespace");
        let shown = invalid_at(
            "[[auth.tokens]]\ntoken = \"same\"\nuser = \"a\"\n\n[[auth.tokens]]\ntoken = \"same\"\nuser = \"b\"\n",
            6,
            "same secret as auth.tokens[0].token",
        );
        assert!(!shown.contains("\"same\""), "a secret leaked into: {shown}");
    }

    #[test]
    fn auth_sources_are_checked() {
        invalid_at(
            "[auth]\nbootstrap_url = \"ftp://x\"\n",
            2,
            "not an http(s) URL",
        );
        invalid_at(
            "[auth.bootstrap]\nurl = \"http://\"\n",
            2,
            "not an http(s) URL",
        );
        invalid_at(
            "[auth]\nbootstrap_url = \"http://a/\"\n[auth.bootstrap]\nurl = \"http://b/\"\n",
            2,
            "both set",
        );
        invalid_at(
            "[auth]\n[auth.jwt]\nissuer = \"x\"\n",
            2,
            "neither secret nor jwks_file",
        );
        invalid_at(
            "[auth.jwt]\nsecret = \"x\"\nleeway_secs = 3601\n",
            3,
            "too large",
        );
    }

    #[test]
    fn allowed_rooms_are_objects_of_plain_values() {
        let (e, shown) = err(
            "[[auth.tokens]]\ntoken = \"x\"\nuser = \"a\"\nallowed_rooms = [\n  { a = 1 },\n  \"room\",\n]\n",
        );
        assert!(
            matches!(e, ConfigError::Type(_)) && e.line() == Some(6),
            "{shown}"
        );
        assert!(
            shown.contains("allowed_rooms[1] is a string, not a room"),
            "{shown}"
        );
        let (e, shown) =
            err("[[auth.tokens]]\ntoken = \"x\"\nuser = \"a\"\nallowed_rooms = [{ a = [1] }]\n");
        assert!(
            matches!(e, ConfigError::Type(_)) && e.line() == Some(4),
            "{shown}"
        );
        assert!(shown.contains("strings, numbers or booleans"), "{shown}");
        let (_, shown) = err(
            "[[auth.tokens]]\ntoken = \"x\"\nuser = \"a\"\nallowed_rooms = [{ a = { b = 1 } }]\n",
        );
        assert!(
            shown.contains("auth.tokens[0].allowed_rooms[0].a is a table"),
            "{shown}"
        );
    }

    #[test]
    fn echo_path_must_be_its_own_path() {
        invalid_at("[diagnostics]\nws_echo_path = \"echo\"\n", 2, "not a path");
        invalid_at("[diagnostics]\nws_echo_path = \"/ws/\"\n", 2, "shadow");
        invalid_at("[diagnostics]\nws_echo_path = \"/api/echo\"\n", 2, "shadow");
    }

    #[test]
    fn the_placeholder_admin_token_is_refused_off_loopback() {
        assert_eq!(
            ok("[admin]\ntoken = \"change-me\"\n")
                .admin
                .token
                .as_deref(),
            Some("change-me")
        );
        ok("[server]\nlisten = \"[::1]:8080\"\n[admin]\ntoken = \"change-me\"\n");
        let shown = invalid_at(
            "[server]\nlisten = \"0.0.0.0:8080\"\n[admin]\ntoken = \"change-me\"\n",
            4,
            "placeholder",
        );
        assert!(shown.contains("openssl rand"), "{shown}");
        ok("[server]\nlisten = \"0.0.0.0:8080\"\n[admin]\ntoken = \"a-real-secret\"\n");
    }

    #[test]
    fn the_embedded_default_parses_and_matches_the_quickstart() {
        let c = embedded_default(Path::new("/opt/modhost"));
        assert_eq!(c.source, None);
        assert_eq!(c.server.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.admin.token.as_deref(), Some("change-me"));
        assert_eq!(c.auth.tokens.len(), 2);
        assert_eq!(c.auth.tokens[0].user, "alice");
        assert_eq!(
            c.auth.tokens[0].allowed_rooms,
            vec![
                json!({"target": "message", "customer": "*"}),
                json!({"target": "notes", "user": "alice"})
            ]
        );
        assert_eq!(
            c.auth.tokens[1].roles,
            vec!["admin".to_owned(), "user".to_owned()]
        );
        assert_eq!(c.trigger.tokens, vec!["trigger-secret".to_owned()]);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.modules.dir, p("/opt/modhost/plugins"));
        assert_eq!(
            c.modules.verify_keys,
            vec![
                p("/opt/modhost/verify_keys"),
                p("/opt/modhost/.modhost/dev-keys/verify")
            ]
        );
        assert_eq!(c.modules.state_dir, p("/opt/modhost/.modhost/state"));
        assert_eq!(
            c.modules.settings["notes"].config,
            json!({"max_notes_per_user": 100})
        );
        // The limits written in comments are the real defaults: uncommenting
        // them all changes nothing.
        let start = EMBEDDED.find("\n[limits]").unwrap();
        let end = EMBEDDED.find("\n[modules]").unwrap();
        let settings: Vec<&str> = EMBEDDED[start..end]
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.contains(" = "))
            .collect();
        assert_eq!(settings.len(), 11, "{settings:?}");
        let again = ok(&format!("[limits]\n{}\n", settings.join("\n")));
        assert_eq!(again.limits, Limits::default());
    }

    #[test]
    fn load_reads_files_and_explains_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("modhost.toml");
        std::fs::write(&path, "[modules]\ndir = \"mods\"\n").unwrap();
        let c = load(&path).unwrap();
        assert_eq!(c.modules.dir, dir.path().join("mods"));
        assert_eq!(c.source.as_deref(), Some(path.as_path()));

        let missing = dir.path().join("nope.toml");
        let e = load(&missing).unwrap_err();
        let shown = e.to_string();
        assert!(matches!(e, ConfigError::Io { .. }), "{shown}");
        assert!(
            shown.contains(&missing.display().to_string()) && shown.contains("--config FILE"),
            "{shown}"
        );

        let big = dir.path().join("big.toml");
        std::fs::write(&big, "#".repeat(MAX_CONFIG_BYTES + 1)).unwrap();
        assert!(matches!(load(&big), Err(ConfigError::TooLarge { .. })));

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, b"a = 1\nb = \"\xff\"\n").unwrap();
        let e = load(&bad).unwrap_err();
        assert!(
            matches!(e, ConfigError::Syntax(_)) && e.line() == Some(2),
            "{e}"
        );
    }

    #[test]
    fn text_over_the_limit_is_refused() {
        let text = format!("# {}\n", "x".repeat(MAX_CONFIG_BYTES));
        assert!(matches!(
            parse(&text, &cfg_path()),
            Err(ConfigError::TooLarge { .. })
        ));
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        /// Fragments that make near-valid configs, so the fuzzing reaches
        /// validation and not only the TOML parser.
        fn fragment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("[server]\n".to_owned()),
                Just("[limits]\n".to_owned()),
                Just("[modules]\n".to_owned()),
                Just("[modules.notes]\n".to_owned()),
                Just("[[auth.tokens]]\n".to_owned()),
                Just("[auth.jwt]\n".to_owned()),
                Just("[diagnostics]\n".to_owned()),
                "[a-z_]{1,12} = [0-9-]{1,12}\n",
                "[a-z_]{1,12} = \"[ -~]{0,12}\"\n",
                "[a-z_]{1,12} = \\[[0-9, \"a]{0,10}\\]\n",
                "[a-z_]{1,12} = \\{ [a-z]{1,3} = [0-9]{1,3} \\}\n",
                any::<String>(),
            ]
        }

        proptest! {
            #[test]
            fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
                let _ = parse(&text, &cfg_path());
            }

            #[test]
            fn parse_never_panics_on_config_like_text(parts in prop::collection::vec(fragment(), 0..12)) {
                let text = parts.concat();
                if let Err(e) = parse(&text, &cfg_path()) {
                    // Every error displays without panicking, too.
                    let _ = e.to_string();
                }
            }
        }
    }
}
