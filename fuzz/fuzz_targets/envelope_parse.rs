//! `.sig` envelopes (TOML text next to each module library): parse never
//! panics, and whatever parses survives its own `to_toml`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modhost::signing::Envelope;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Envelope::parse(text) {
        Ok(env) => {
            let again = Envelope::parse(&env.to_toml()).expect("to_toml parses");
            assert_eq!(again, env);
            let _ = env.signed_message();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
