//! Links the kernel as a freestanding static ELF with our own linker script.
//! Code-generation flags (no red zone) cannot be set here: vmm/build.rs
//! builds the kernel with them (see docs/ARCHITECTURE.md, "Building the guest").
fn main() {
    embed_user_programs();
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=linker.ld");
    for arg in [
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,-z,noexecstack",
        &format!("-Wl,-T,{dir}/linker.ld"),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}

/// Writes `$OUT_DIR/programs.rs`: the user programs the kernel can exec,
/// from `FORKVM_USER_PROGRAMS` (`name=path;...`, set by vmm/build.rs, which
/// builds them first). Without it (unit tests, lints) the table is empty.
fn embed_user_programs() {
    println!("cargo:rerun-if-env-changed=FORKVM_USER_PROGRAMS");
    let list = std::env::var("FORKVM_USER_PROGRAMS").unwrap_or_default();
    let mut table = String::from("/// Programs embedded at build time: (name, ELF image).\n");
    table.push_str("pub static PROGRAMS: &[(&str, &[u8])] = &[\n");
    for entry in list.split(';').filter(|e| !e.is_empty()) {
        let (name, path) = entry
            .split_once('=')
            .expect("FORKVM_USER_PROGRAMS entries are name=path");
        println!("cargo:rerun-if-changed={path}");
        table.push_str(&format!("    ({name:?}, include_bytes!({path:?})),\n"));
    }
    table.push_str("];\n");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("programs.rs");
    std::fs::write(out, table).expect("cannot write programs.rs");
}
