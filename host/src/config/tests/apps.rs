//! `[apps.<name>]`: defaults, the keys an app table allows, and errors that
//! name the key and say what to write.

use super::*;
use crate::config::{AppProtocol, HashAlgorithm, RestartPolicy};

#[test]
fn an_app_gets_its_defaults() {
    let c = ok("[apps.web]\ncommand = \"/usr/bin/app\"\nargs = [\"--port={port}\", \"a b\"]\n");
    let app = &c.apps["web"];
    assert_eq!(app.command, "/usr/bin/app");
    assert_eq!(app.args, ["--port={port}", "a b"]);
    assert_eq!(app.working_dir, "{job_dir}");
    assert_eq!(app.port_range, (20000, 29999));
    assert_eq!(app.protocol, AppProtocol::Http);
    assert_eq!(app.hash_algorithm, HashAlgorithm::Argon2id);
    assert!(!app.require_password);
    assert_eq!(app.restart, RestartPolicy::Never);
    assert_eq!(app.stop_signal, libc::SIGTERM);
    assert_eq!(app.stop_grace, Duration::from_millis(5000));
    assert_eq!((app.max_jobs_per_user, app.max_jobs), (2, 20));
    assert_eq!((app.log_max_bytes, app.log_files), (1 << 20, 3));
    assert_eq!(app.digest_realm, "modhost");
    assert!(ok("").apps.is_empty());
}

#[test]
fn app_errors_name_the_key() {
    invalid_at("[apps.web]\nargs = []\n", 1, "has no command");
    let app = "[apps.web]\ncommand = \"x\"\n";
    invalid_at(
        &format!("{app}protocol = \"ftp\"\n"),
        3,
        "apps.web.protocol",
    );
    invalid_at(&format!("{app}hash_algorithm = \"md5\"\n"), 3, "apache_md5");
    invalid_at(&format!("{app}port_range = [80, 90]\n"), 3, "port_range");
    invalid_at(
        &format!("{app}port_range = [3000, 2000]\n"),
        3,
        "first ≤ last",
    );
    invalid_at(&format!("{app}stop_signal = \"TERM\"\n"), 3, "SIGTERM");
    invalid_at(&format!("{app}restart = \"always\"\n"), 3, "on-failure");
    invalid_at(
        &format!("{app}digest_realm = \"a:b\"\n"),
        3,
        "apps.web.digest_realm",
    );
    invalid_at(
        &format!("{app}config_file = \"../x\"\n"),
        3,
        "plain file name",
    );
    invalid_at(
        &format!("{app}config_template = \"x\"\n"),
        3,
        "config_file is not",
    );
    invalid_at(&format!("{app}env = {{ A = 1 }}\n"), 3, "apps.web.env.A");
    invalid_at(
        &format!("{app}protocol = \"https\"\nready_path = \"/\"\n"),
        4,
        "only checked over plain HTTP",
    );
    invalid_at("[apps.Web]\ncommand = \"x\"\n", 1, "not an app name");
    let (e, shown) = err(&format!("{app}comand = \"y\"\n"));
    assert!(matches!(e, ConfigError::UnknownKey(_)), "{shown}");
    assert!(
        shown.contains("comand") && shown.contains("command"),
        "{shown}"
    );
}

#[test]
fn on_failure_reads_its_tries_and_backoff() {
    let c = ok(
        "[apps.web]\ncommand = \"x\"\nrestart = \"on-failure\"\nmax_restarts = 5\nrestart_backoff_ms = 250\n",
    );
    assert_eq!(
        c.apps["web"].restart,
        RestartPolicy::OnFailure {
            max_tries: 5,
            backoff: Duration::from_millis(250)
        }
    );
}

#[test]
fn the_readmes_notebook_example_parses() {
    let readme = include_str!("../../../../README.md");
    let start = readme
        .find("```toml\n[apps.notebook]")
        .expect("README's Jobs section shows [apps.notebook]");
    let block = &readme[start + "```toml\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    let c = ok(block);
    let app = &c.apps["notebook"];
    assert_eq!(app.protocol, AppProtocol::Https);
    assert_eq!(app.hash_algorithm, HashAlgorithm::Sha512);
    assert!(
        app.config_template
            .as_deref()
            .unwrap()
            .contains("{password_hash}")
    );
}
