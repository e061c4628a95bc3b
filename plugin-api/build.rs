//! Records the target triple so the ABI id names the platform a module was
//! built for (a module built for another target must never be loaded).
fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=MODHOST_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
