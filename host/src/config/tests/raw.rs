//! Property tests of stage one: declared bounds and module pass-through.

use std::{collections::BTreeMap, path::Path};

use proptest::prelude::*;

use crate::config::{Config, Limits, error::Problem, raw::RawConfig};

fn validate_text(text: &str) -> Result<Config, Problem> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| panic!("{text}: {e}"))?;
    raw.validate(Path::new("/etc/modhost"))
}

proptest! {
    /// Every limit accepts exactly its documented range: values inside
    /// it come through unchanged, values outside are a problem at that
    /// key (never a panic, a wrap or a silent clamp).
    #[test]
    fn limits_accept_exactly_their_range(
        which in 0..Limits::DECLS.len(),
        value in prop_oneof![
            0u64..2_000,
            any::<u32>().prop_map(u64::from),
            (0u64..=i64::MAX as u64),
        ],
    ) {
        let decl = &Limits::DECLS[which];
        let (min, max) = (decl.bounds)().expect("every limit is bounded");
        let text = format!("[limits]\n{} = {value}\n", decl.key);
        let result = validate_text(&text);
        if (min..=max).contains(&value) {
            let limits = result.unwrap().limits;
            let got = match decl.key {
                "max_frame_bytes" => limits.max_frame_bytes as u64,
                "max_json_depth" => limits.max_json_depth as u64,
                "max_subscriptions" => limits.max_subscriptions as u64,
                "send_queue" => limits.send_queue as u64,
                "max_connections" => limits.max_connections as u64,
                "calls_per_second" => u64::from(limits.calls_per_second),
                "max_calls_in_flight" => limits.max_calls_in_flight as u64,
                "call_timeout_ms" => limits.call_timeout.as_millis() as u64,
                "max_params_bytes" => limits.max_params_bytes as u64,
                "module_queue" => limits.module_queue as u64,
                "resume_buffer" => limits.resume_buffer as u64,
                "max_rooms_per_publish" => limits.max_rooms_per_publish as u64,
                other => panic!("a limit this test does not know: {other}"),
            };
            prop_assert_eq!(got, value);
        } else {
            let problem = result.unwrap_err();
            prop_assert!(format!("{problem:?}").contains(decl.key), "{problem:?}");
        }
    }

    /// `[modules.<name>]` tables pass through to the module as JSON,
    /// whatever keys and scalar values they hold.
    #[test]
    fn module_tables_pass_through(
        entries in proptest::collection::btree_map(
            "[a-z][a-z_]{0,8}",
            prop_oneof![
                any::<i64>().prop_map(toml::Value::Integer),
                any::<bool>().prop_map(toml::Value::Boolean),
                "[ -~]{0,16}".prop_map(toml::Value::String),
            ],
            0..6,
        ),
    ) {
        // Keys the host reads itself are not passed through.
        let entries: BTreeMap<String, toml::Value> = entries
            .into_iter()
            .filter(|(k, _)| k != "enabled" && k != "call_timeout_ms")
            .collect();
        let mut table = toml::Table::new();
        table.insert(
            "modules".into(),
            toml::Value::Table(toml::Table::from_iter([(
                "notes".to_owned(),
                toml::Value::Table(entries.clone().into_iter().collect()),
            )])),
        );
        let config = validate_text(&toml::to_string(&table).unwrap()).unwrap();
        let json = &config.modules.settings_for("notes").config;
        for (k, v) in &entries {
            let want = match v {
                toml::Value::Integer(i) => serde_json::json!(i),
                toml::Value::Boolean(b) => serde_json::json!(b),
                toml::Value::String(s) => serde_json::json!(s),
                _ => unreachable!(),
            };
            prop_assert_eq!(&json[k], &want, "{}", k);
        }
    }
}
