//! Tests for `signing::keys`: `.pub` files, key generation, reading `.key` files.

use super::*;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

fn b64_key(seed: u8) -> String {
    BASE64.encode(
        SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .as_bytes(),
    )
}

fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn loads_keys_comments_and_rotation() {
    let dir = private_dir();
    write(
        &dir.path().join("notes.pub"),
        &format!(
            "# notes keys\n\n{}\n  {}  # rotated in\n",
            b64_key(1),
            b64_key(2)
        ),
    );
    write(&dir.path().join("echo.pub"), &format!("{}\n", b64_key(3)));
    let ring = Keyring::load(&[dir.path().to_owned()]).unwrap();
    assert_eq!(ring.keys_for("notes").len(), 2);
    assert_eq!(ring.keys_for("echo").len(), 1);
    assert!(ring.keys_for("other").is_empty());
    assert_eq!(ring.modules().collect::<Vec<_>>(), ["echo", "notes"]);
    assert!(ring.warnings().is_empty(), "{:?}", ring.warnings());
}

#[test]
fn merges_folders_without_duplicates() {
    let (a, b) = (private_dir(), private_dir());
    write(&a.path().join("notes.pub"), &b64_key(1));
    write(
        &b.path().join("notes.pub"),
        &format!("{}\n{}\n", b64_key(1), b64_key(2)),
    );
    let ring = Keyring::load(&[a.path().to_owned(), b.path().to_owned()]).unwrap();
    assert_eq!(ring.keys_for("notes").len(), 2);
}

#[test]
fn missing_folder_is_a_warning() {
    let dir = private_dir();
    let ring = Keyring::load(&[dir.path().join("nope")]).unwrap();
    assert!(ring.keys_for("notes").is_empty());
    assert_eq!(ring.warnings().len(), 1);
    assert!(
        ring.warnings()[0].contains("does not exist"),
        "{:?}",
        ring.warnings()
    );
}

#[test]
fn only_module_pub_files_count() {
    let dir = private_dir();
    write(&dir.path().join("notes.pub.bak"), &b64_key(1));
    write(&dir.path().join("notes.txt"), &b64_key(1));
    write(&dir.path().join("Notes.pub"), &b64_key(1));
    write(&dir.path().join("_ok.pub"), "# empty\n");
    let ring = Keyring::load(&[dir.path().to_owned()]).unwrap();
    assert_eq!(ring.modules().count(), 0);
    assert_eq!(ring.warnings().len(), 2, "{:?}", ring.warnings());
    assert!(ring.warnings().iter().any(|w| w.contains("Notes.pub")));
    assert!(ring.warnings().iter().any(|w| w.contains("holds no key")));
}

#[test]
fn malformed_line_names_file_and_line() {
    let dir = private_dir();
    let path = dir.path().join("notes.pub");
    for bad in [
        "not base64!!",
        &BASE64.encode([1u8; 31]),
        &BASE64.encode([0u8; 32]),
    ] {
        write(&path, &format!("# c\n{}\n{bad}\n", b64_key(1)));
        let err = Keyring::load(&[dir.path().to_owned()]).unwrap_err();
        let KeyError::Malformed { path: p, line, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!((p.as_path(), *line), (path.as_path(), 3));
        assert!(err.to_string().contains("notes.pub:3:"), "{err}");
    }
}

#[test]
fn refuses_writable_folder_or_file() {
    let dir = private_dir();
    write(&dir.path().join("notes.pub"), &b64_key(1));
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o775)).unwrap();
    let err = Keyring::load(&[dir.path().to_owned()]).unwrap_err();
    assert!(
        matches!(err, KeyError::InsecurePermissions { mode: 0o775, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod go-w"), "{err}");

    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(
        dir.path().join("notes.pub"),
        fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let err = Keyring::load(&[dir.path().to_owned()]).unwrap_err();
    assert!(
        matches!(err, KeyError::InsecurePermissions { mode: 0o666, .. }),
        "{err}"
    );
}

#[test]
fn refuses_a_file_as_folder() {
    let dir = private_dir();
    let file = dir.path().join("f");
    write(&file, "");
    assert!(matches!(
        Keyring::load(&[file]),
        Err(KeyError::NotADirectory { .. })
    ));
}

#[test]
fn key_id_is_sha256_prefix() {
    let key = SigningKey::from_bytes(&[1; 32]).verifying_key();
    let full = hex::encode(Sha256::digest(key.as_bytes()));
    assert_eq!(key_id(&key), full[..16]);
}

#[test]
fn generate_writes_private_key_0600_and_appends_pub() {
    let dir = private_dir();
    let (keys, verify) = (dir.path().join("keys"), dir.path().join("verify_keys"));
    let first = generate_key("notes", &keys, &verify).unwrap();
    assert_eq!(first.key_file, keys.join("notes.key"));
    let mode = fs::metadata(&first.key_file).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(fs::metadata(&keys).unwrap().mode() & 0o077, 0);
    assert_eq!(fs::metadata(&verify).unwrap().mode() & 0o022, 0);
    let text = fs::read_to_string(&first.key_file).unwrap();
    assert!(
        text.starts_with("# modhost signing key for module notes\n"),
        "{text}"
    );

    let key = read_signing_key(&first.key_file).unwrap();
    assert_eq!(key.verifying_key(), first.verifying_key);
    assert_eq!(first.key_id, key_id(&first.verifying_key));

    // Rotation: a second key in another folder is appended, not replacing.
    let second = generate_key("notes", &dir.path().join("keys2"), &verify).unwrap();
    let pub_text = fs::read_to_string(&first.pub_file).unwrap();
    assert!(
        pub_text.contains(&format!("key_id {}", first.key_id)),
        "{pub_text}"
    );
    assert!(
        pub_text.contains(&format!("key_id {}", second.key_id)),
        "{pub_text}"
    );
    let ring = Keyring::load(&[verify]).unwrap();
    assert_eq!(
        ring.keys_for("notes"),
        [first.verifying_key, second.verifying_key]
    );
}

#[test]
fn generate_refuses_to_overwrite() {
    let dir = private_dir();
    let verify = dir.path().join("verify_keys");
    generate_key("notes", dir.path(), &verify).unwrap();
    let before = fs::read(dir.path().join("notes.key")).unwrap();
    let pub_before = fs::read(verify.join("notes.pub")).unwrap();
    let err = generate_key("notes", dir.path(), &verify).unwrap_err();
    assert!(matches!(err, KeyError::KeyFileExists { .. }), "{err}");
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert_eq!(fs::read(dir.path().join("notes.key")).unwrap(), before);
    assert_eq!(fs::read(verify.join("notes.pub")).unwrap(), pub_before);
}

#[test]
fn generate_appends_after_a_file_without_final_newline() {
    let dir = private_dir();
    let verify = dir.path().join("vk");
    fs::create_dir(&verify).unwrap();
    write(&verify.join("notes.pub"), &b64_key(9));
    generate_key("notes", dir.path(), &verify).unwrap();
    let ring = Keyring::load(&[verify]).unwrap();
    assert_eq!(ring.keys_for("notes").len(), 2);
}

#[test]
fn generate_refuses_bad_module_and_writable_verify_dir() {
    let dir = private_dir();
    let err = generate_key("../evil", dir.path(), dir.path()).unwrap_err();
    assert!(matches!(err, KeyError::InvalidModule(_)), "{err}");
    let verify = dir.path().join("vk");
    fs::create_dir(&verify).unwrap();
    fs::set_permissions(&verify, fs::Permissions::from_mode(0o777)).unwrap();
    let err = generate_key("notes", dir.path(), &verify).unwrap_err();
    assert!(matches!(err, KeyError::InsecurePermissions { .. }), "{err}");
    assert!(!dir.path().join("notes.key").exists());
}

#[test]
fn read_signing_key_refuses_open_modes_and_junk() {
    let dir = private_dir();
    let verify = dir.path().join("vk");
    let made = generate_key("notes", dir.path(), &verify).unwrap();
    fs::set_permissions(&made.key_file, fs::Permissions::from_mode(0o640)).unwrap();
    let err = read_signing_key(&made.key_file).unwrap_err();
    assert!(
        matches!(err, KeyError::InsecureKeyFile { mode: 0o640, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");

    let path = dir.path().join("x.key");
    for (text, want_line) in [("# c\nnope\n", Some(2)), ("# only a comment\n", None)] {
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        match (read_signing_key(&path).unwrap_err(), want_line) {
            (KeyError::Malformed { line, .. }, Some(want)) => assert_eq!(line, want),
            (KeyError::EmptyKeyFile { .. }, None) => {}
            (err, _) => panic!("{err}"),
        }
    }
    fs::write(&path, format!("{}\n{}\n", b64_key(1), b64_key(2))).unwrap();
    let err = read_signing_key(&path).unwrap_err();
    assert!(err.to_string().contains("exactly one key"), "{err}");
}

#[test]
fn utc_date_formats_known_days() {
    assert_eq!(utc_date(UNIX_EPOCH), "1970-01-01");
    assert_eq!(
        utc_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "2000-02-29"
    );
    assert_eq!(
        utc_date(UNIX_EPOCH + Duration::from_secs(1_767_225_599)),
        "2025-12-31"
    );
}
