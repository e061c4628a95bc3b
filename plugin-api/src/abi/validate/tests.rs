use super::*;

fn manifest() -> Manifest {
    Manifest::new("notes", "1.0.0")
        .command(CommandSpec::new("write_note").param("note"))
        .command(CommandSpec::new("purge").min_role("staff"))
        .command(CommandSpec::new("fire").no_reply())
}

fn caller(kind: CallerKind, roles: &[&str]) -> Caller {
    Caller {
        kind,
        user: "alice".into(),
        session: "s1".into(),
        roles: roles.iter().map(|r| (*r).into()).collect(),
        module: "".into(),
    }
}

fn refusal(command: &str, params: &str, caller: &Caller, limit: usize) -> (ErrorCode, String) {
    let failure = check_call(&manifest(), command, params, caller, limit).unwrap_err();
    (failure.code, failure.message.into_string())
}

#[test]
fn refusals_name_the_problem() {
    let alice = caller(CallerKind::User, &[]);
    assert_eq!(
        refusal("nope", "{}", &alice, 100),
        (
            ErrorCode::UnknownCommand,
            r#"module notes has no command "nope""#.into()
        )
    );
    assert_eq!(
        refusal("purge", "{}", &alice, 100),
        (
            ErrorCode::Forbidden,
            r#"notes.purge needs the role "staff""#.into()
        )
    );
    assert_eq!(
        refusal("write_note", r#"{"note":"long"}"#, &alice, 8),
        (
            ErrorCode::TooLarge,
            "params are 15 bytes; the limit is 8".into()
        )
    );
    assert_eq!(
        refusal("write_note", "[1]", &alice, 100),
        (
            ErrorCode::MissingParam,
            "params must be a JSON object".into()
        )
    );
    assert_eq!(
        refusal("write_note", r#"{"not":1}"#, &alice, 100),
        (
            ErrorCode::MissingParam,
            r#"notes.write_note needs the param "note""#.into()
        )
    );
    let (code, message) = refusal("write_note", "{", &alice, 100);
    assert_eq!(code, ErrorCode::MissingParam);
    assert!(message.starts_with("params are not a valid JSON object: "));
}

#[test]
fn role_is_checked_before_params() {
    // An outsider must not learn which params a command it may not call takes.
    let alice = caller(CallerKind::User, &[]);
    let (code, _) = refusal("purge", "[not json", &alice, 1);
    assert_eq!(code, ErrorCode::Forbidden);
}

#[test]
fn admins_the_operator_and_modules_calling_for_them_pass_role_checks() {
    let m = manifest();
    for who in [
        caller(CallerKind::User, &["staff"]),
        caller(CallerKind::User, &["admin"]),
        caller(CallerKind::Module, &["staff"]),
        caller(CallerKind::Operator, &[]),
    ] {
        let spec = check_call(&m, "purge", "{}", &who, 100).unwrap();
        assert_eq!(spec.name.as_str(), "purge");
    }
}

#[test]
fn a_module_is_held_to_the_roles_it_carries() {
    // A module calls with the roles of the user it handles a call for, and
    // none on its own behalf: being a module grants nothing.
    let m = manifest();
    for roles in [&[][..], &["user"][..]] {
        let (code, _) = refusal("purge", "{}", &caller(CallerKind::Module, roles), 100);
        assert_eq!(code, ErrorCode::Forbidden);
    }
    assert!(check_call(&m, "fire", "{}", &caller(CallerKind::Module, &[]), 100).is_ok());
}

#[test]
fn returns_the_spec_and_ignores_values() {
    let m = manifest();
    let alice = caller(CallerKind::User, &[]);
    let spec = check_call(&m, "fire", "  {}", &alice, 100).unwrap();
    assert!(!spec.needs_reply);
    // Values are skipped unparsed beyond syntax; escaped keys are unescaped.
    let params = r#"{"n\u006fte": {"deep": [1, 2, {"x": null}]}}"#;
    assert!(check_call(&m, "write_note", params, &alice, 100).is_ok());
}
