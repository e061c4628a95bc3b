use super::*;
use std::sync::Arc;

/// A build's SHA-512, told apart by its first byte.
fn build(n: u8) -> [u8; 64] {
    let mut sha512 = [0u8; 64];
    sha512[0] = n;
    sha512
}

const B: [u8; 64] = [7u8; 64];

#[test]
fn accept_highest_check() {
    let dir = tempfile::tempdir().unwrap();
    let store = SeqStore::open(dir.path()).unwrap();
    assert_eq!(store.highest("notes"), None);
    store.check("notes", 0, &B, false).unwrap();
    store.accept("notes", 42, &B).unwrap();
    assert_eq!(store.highest("notes"), Some(42));
    assert_eq!(store.highest("echo"), None);
    store.check("notes", 43, &B, false).unwrap();
    for seq in [41, 0] {
        let err = store.check("notes", seq, &B, false).unwrap_err();
        assert!(
            matches!(err, SeqError::Rollback { highest: 42, .. }),
            "{err}"
        );
    }
    let msg = store.check("notes", 41, &B, false).unwrap_err().to_string();
    assert!(msg.contains("seq 41") && msg.contains("seq 42"), "{msg}");
    assert!(
        msg.contains("--seq") && msg.contains("allow_rollback = true"),
        "{msg}"
    );
    store.check("notes", 41, &B, true).unwrap();
}

#[test]
fn never_lowers_the_mark() {
    let dir = tempfile::tempdir().unwrap();
    let store = SeqStore::open(dir.path()).unwrap();
    store.accept("notes", 10, &B).unwrap();
    store.accept("notes", 3, &B).unwrap(); // an allowed rollback
    store.accept("notes", 10, &B).unwrap();
    assert_eq!(store.highest("notes"), Some(10));
    store.accept("notes", u64::MAX, &B).unwrap();
    assert_eq!(store.highest("notes"), Some(u64::MAX));
}

#[test]
fn persists_across_reopen_with_private_modes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    SeqStore::open(&state)
        .unwrap()
        .accept("notes", 7, &B)
        .unwrap();
    let store = SeqStore::open(&state).unwrap();
    assert_eq!(store.highest("notes"), Some(7));
    assert_eq!(
        fs::read_to_string(state.join("seq/notes")).unwrap(),
        format!("7 {}\n", hex::encode(B))
    );
    assert_eq!(fs::metadata(&state).unwrap().mode() & 0o777, 0o700);
    assert_eq!(
        fs::metadata(state.join("seq")).unwrap().mode() & 0o777,
        0o700
    );
}

#[test]
fn crash_leftovers_are_ignored_and_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let store = SeqStore::open(dir.path()).unwrap();
    store.accept("notes", 5, &B).unwrap();
    // What a kill -9 between "write temp" and "rename" leaves behind.
    let leftover = dir.path().join("seq/.notes.tmp-1-0");
    fs::write(&leftover, "9").unwrap();
    let store = SeqStore::open(dir.path()).unwrap();
    assert_eq!(store.highest("notes"), Some(5));
    assert!(!leftover.exists());
}

#[test]
fn corrupt_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = SeqStore::open(dir.path()).unwrap();
    for junk in ["", "12x\n", "-1\n", "99999999999999999999999\n"] {
        fs::write(dir.path().join("seq/notes"), junk).unwrap();
        let err = store.check("notes", 1, &B, false).unwrap_err();
        assert!(matches!(err, SeqError::Corrupt { .. }), "{junk:?}: {err}");
        assert!(err.to_string().contains("seq/notes"), "{err}");
        assert!(matches!(
            store.accept("notes", 1, &B),
            Err(SeqError::Corrupt { .. })
        ));
        assert_eq!(store.highest("notes"), None);
    }
    // Other modules are unaffected.
    store.accept("echo", 1, &B).unwrap();
}

#[test]
fn refuses_bad_module_names_and_open_folders() {
    let dir = tempfile::tempdir().unwrap();
    let store = SeqStore::open(dir.path()).unwrap();
    assert!(matches!(
        store.accept("../x", 1, &B),
        Err(SeqError::InvalidModule(_))
    ));
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(dir.path().join("seq"), fs::Permissions::from_mode(0o777)).unwrap();
    let err = SeqStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, SeqError::InsecurePermissions { .. }), "{err}");
}

#[test]
fn concurrent_accepts_keep_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SeqStore::open(dir.path()).unwrap());
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..25u64 {
                    // Interleaved, out-of-order values across threads.
                    store.accept("notes", i * 8 + t, &B).unwrap();
                    store.accept("echo", 1000 - (i * 8 + t), &B).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.highest("notes"), Some(24 * 8 + 7));
    assert_eq!(store.highest("echo"), Some(1000));
    assert_eq!(
        SeqStore::open(dir.path()).unwrap().highest("notes"),
        Some(199)
    );
    let leftovers = fs::read_dir(dir.path().join("seq")).unwrap().count();
    assert_eq!(leftovers, 2);
}

#[test]
fn the_build_accepted_at_the_mark_loads_again_and_no_other_does() {
    let dir = tempfile::tempdir().unwrap();
    SeqStore::open(dir.path())
        .unwrap()
        .accept("notes", 42, &build(1))
        .unwrap();
    // As after a restart: only the file on disk remembers the build.
    let store = SeqStore::open(dir.path()).unwrap();
    store.check("notes", 42, &build(1), false).unwrap();
    let err = store.check("notes", 42, &build(2), false).unwrap_err();
    assert!(
        matches!(err, SeqError::SameSeqOtherBuild { seq: 42, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--seq"), "{err}");
    store.check("notes", 42, &build(2), true).unwrap();
    // An allowed equal-seq load keeps the first build as the mark's.
    store.accept("notes", 42, &build(2)).unwrap();
    assert!(store.check("notes", 42, &build(2), false).is_err());
    store.check("notes", 43, &build(2), false).unwrap();
}

#[test]
fn a_mark_without_a_build_takes_the_first_one_accepted_at_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let store = SeqStore::open(dir.path()).unwrap();
    // A state file from before builds were recorded.
    fs::write(dir.path().join("seq/notes"), "9\n").unwrap();
    store.check("notes", 9, &build(1), false).unwrap();
    store.check("notes", 9, &build(2), false).unwrap();
    assert!(store.check("notes", 8, &build(1), false).is_err());
    store.accept("notes", 9, &build(1)).unwrap();
    store.check("notes", 9, &build(1), false).unwrap();
    assert!(matches!(
        store.check("notes", 9, &build(2), false),
        Err(SeqError::SameSeqOtherBuild { .. })
    ));
}

#[test]
fn a_damaged_build_hash_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = SeqStore::open(dir.path()).unwrap();
    for junk in ["5 \n", "5 zz\n", "5 abcd\n"] {
        fs::write(dir.path().join("seq/notes"), junk).unwrap();
        let err = store.check("notes", 6, &B, false).unwrap_err();
        assert!(matches!(err, SeqError::Corrupt { .. }), "{junk:?}: {err}");
    }
}
