//! Unit tests of config parsing: the file in, `Config` or `ConfigError` out.

mod amqp;
mod apps;
mod cluster;
mod diff;
mod docs;
mod errors;
mod history;
mod json_path;
mod oidc;
mod raw;

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

[gateway]
status = "admins"

[admin]
token = "s3cret-admin"

[auth]
bootstrap_url = "https://auth.example.com/api/bootstrap/"

[[auth.tokens]]
token = "alice-s3cret"
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

[auth.oidc]
issuer = "http://sso.internal:8080/realms/main"
audience = ["modhost", "web"]
rooms_claim = "modhost.rooms"
refresh_secs = 600
timeout_ms = 2000

[trigger]
tokens = ["t1", "t2"]

[trigger.amqp]
url = "amqp://ht:s3cret-amqp@rabbit.internal:5673/prod"
exchange = "rooms"
exchange_type = "fanout"
routing_key = ""
queue_prefix = "web-1."
max_message_bytes = 4096
prefetch = 16

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
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_pending_connections: 512,
            allowed_origins: Vec::new(),
            tls: None,
        },
        gateway: GatewayConfig {
            status: StatusAccess::Admins,
        },
        admin: AdminConfig {
            token: Some("s3cret-admin".into()),
        },
        auth: AuthConfig {
            tokens: vec![
                StaticToken {
                    token: "alice-s3cret".into(),
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
                user_id_path: None,
                roles_path: JsonPath::parse("roles").unwrap(),
            }),
            oidc: Some(OidcConfig {
                issuer: "http://sso.internal:8080/realms/main".into(),
                audience: vec!["modhost".into(), "web".into()],
                roles_claim: JsonPath::parse("realm_access.roles").unwrap(),
                rooms_claim: Some(JsonPath::parse("modhost.rooms").unwrap()),
                leeway: Duration::from_secs(30),
                refresh: Duration::from_secs(600),
                unknown_kid_refresh: Duration::from_secs(10),
                timeout: Duration::from_millis(2000),
                max_response_bytes: 256 * 1024,
                ca_file: None,
            }),
            ..AuthConfig::default()
        },
        trigger: TriggerConfig {
            tokens: vec!["t1".into(), "t2".into()],
            amqp: Some(AmqpConfig {
                url: AmqpUrl::new(
                    "amqp://ht:s3cret-amqp@rabbit.internal:5673/prod".into(),
                    "amqp://ht:***@rabbit.internal:5673/prod".into(),
                ),
                exchange: "rooms".into(),
                exchange_type: ExchangeType::Fanout,
                routing_key: String::new(),
                queue_prefix: "web-1.".into(),
                max_message_bytes: 4096,
                prefetch: 16,
            }),
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
            max_rooms_per_publish: 64,
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
        external: ExternalConfig {
            templates: p("/srv/modhost/templates"),
            ..ExternalConfig::default()
        },
        log: LogConfig::default(),
        apps: Default::default(),
        history: HistoryConfig::default(),
        cluster: None,
        metrics: Default::default(),
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
    // Unset paths: the user id where 2.x and 3.x backends put it, roles at `roles`.
    assert_eq!(b.user_id_path, None);
    assert_eq!(b.roles_path.as_str(), "roles");
    let short = ok("[auth]\nbootstrap_url = \"http://127.0.0.1:8000/b/\"\n")
        .auth
        .bootstrap
        .unwrap();
    assert_eq!(short.user_id_path, None);
    assert_eq!(short.roles_path.as_str(), "roles");
}

#[test]
fn bootstrap_reply_paths() {
    let b = ok("[auth.bootstrap]\nurl = \"http://127.0.0.1:8000/b/\"\nuser_id_path = \"data.user.pk\"\nroles_path = \"user.roles\"\n")
        .auth
        .bootstrap
        .unwrap();
    assert_eq!(
        b.user_id_path.as_ref().map(JsonPath::as_str),
        Some("data.user.pk")
    );
    assert_eq!(b.roles_path.as_str(), "user.roles");
    let b = ok("[auth.bootstrap]\nurl = \"http://127.0.0.1:8000/b/\"\nuser_id_path = \"id\"\n")
        .auth
        .bootstrap
        .unwrap();
    assert_eq!(b.user_id_path.as_ref().map(JsonPath::as_str), Some("id"));
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
    assert_eq!(settings.len(), Limits::DECLS.len(), "{settings:?}");
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
