//! `uname`.

use super::{current_mm, Args, SysResult};

/// One field of `struct utsname`.
const FIELD: usize = 65;

pub fn uname(a: Args) -> SysResult {
    let fields: [&[u8]; 6] = [
        b"Linux",
        b"forkvm",
        b"6.0.0-forkvm",
        b"#1 forkvm",
        b"x86_64",
        b"(none)",
    ];
    let mut bytes = [0u8; FIELD * 6];
    for (i, field) in fields.iter().enumerate() {
        bytes[i * FIELD..i * FIELD + field.len()].copy_from_slice(field);
    }
    current_mm()?.copy_to_user(a.0[0], &bytes)?;
    Ok(0)
}
