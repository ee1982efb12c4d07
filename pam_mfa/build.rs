//! Link flags for pam_mfa.so.

fn main() {
    // libpam dlclose()s every module at pam_end, so each login would map and
    // relocate the module again; unloading a Rust library is fragile anyway
    // (thread-local destructors). -z nodelete keeps it mapped once loaded.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
