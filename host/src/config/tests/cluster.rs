//! `[cluster]`: off without `nats_url`, defaults, every refusal at its
//! line, secrets kept out of what is shown, and a change needs a restart.

use super::*;

#[test]
fn off_without_nats_url_and_defaults_with_it() {
    assert_eq!(ok("").cluster, None);
    let c = ok("[cluster]\nnats_url = \"nats://127.0.0.1:4222\"\n")
        .cluster
        .unwrap();
    assert_eq!(c.subject_prefix, "modhost");
    assert!(!c.tls_required && c.token.is_none() && c.credentials_file.is_none());
    // The default name is the same at every read (a reload is no change).
    let again = ok("[cluster]\nnats_url = \"nats://127.0.0.1:4222\"\n")
        .cluster
        .unwrap();
    assert_eq!(c.name, again.name);
    assert!(
        c.name.ends_with(&format!("-{}", std::process::id())),
        "{}",
        c.name
    );
    let c = ok(
        "[cluster]\nnats_url = \"tls://nats:4222\"\nname = \"web-1\"\n\
        credentials_file = \"nats.creds\"\ntls_ca_file = \"ca.pem\"\ntls_required = true\n\
        subject_prefix = \"acme.prod\"\n",
    )
    .cluster
    .unwrap();
    assert_eq!(c.name, "web-1");
    assert_eq!(c.subject_prefix, "acme.prod");
    assert!(c.tls_required);
    assert!(c.credentials_file.unwrap().is_absolute());
    assert!(c.tls_ca_file.unwrap().is_absolute());
}

#[test]
fn bad_values_are_refused_at_their_line() {
    invalid_at("[cluster]\nname = \"a\"\n", 2, "cluster.nats_url is not");
    invalid_at("[cluster]\nnats_url = \"http://x\"\n", 2, "not nats or tls");
    invalid_at("[cluster]\nnats_url = \"nats-server\"\n", 2, "not a URL");
    invalid_at(
        "[cluster]\nnats_url = \"nats://x\"\nname = \"web 1\"\n",
        3,
        "letters, digits",
    );
    invalid_at(
        "[cluster]\nnats_url = \"nats://x\"\nsubject_prefix = \"a.*\"\n",
        3,
        "plain tokens",
    );
    invalid_at(
        "[cluster]\nnats_url = \"nats://x\"\ntoken = \"t\"\ncredentials_file = \"c\"\n",
        3,
        "both set",
    );
}

#[test]
fn secrets_are_not_shown_and_a_change_needs_a_restart() {
    let c = ok("[cluster]\nnats_url = \"nats://u:pa55@x:4222\"\ntoken = \"t0ken\"\n");
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("pa55") && !debug.contains("t0ken"),
        "{debug}"
    );
    let other = ok("[cluster]\nnats_url = \"nats://y:4222\"\n");
    assert_eq!(restart_required(&c, &other), vec!["cluster"]);
    assert!(restart_required(&c, &c).is_empty());
}
