//! The user programs built into the kernel image (see guest/build.rs).
//! `execve` finds programs here by name: there is no file system.

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

/// The ELF image of the program named by `path` (its last component, so
/// `/bin/hello` and `hello` are the same program).
pub fn find(path: &[u8]) -> Option<&'static [u8]> {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    PROGRAMS
        .iter()
        .find(|(program, _)| program.as_bytes() == name)
        .map(|(_, image)| *image)
}

/// Names of the embedded programs.
pub fn names() -> impl Iterator<Item = &'static str> {
    PROGRAMS.iter().map(|(name, _)| *name)
}
