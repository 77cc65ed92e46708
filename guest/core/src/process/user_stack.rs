//! The initial user stack of a new program, laid out as Linux's
//! `create_elf_tables` does: argc, argv pointers, NULL, envp pointers,
//! NULL, the auxiliary vector, then the strings and AT_RANDOM bytes above.

use alloc::vec::Vec;

use crate::errno::E2BIG;

pub const AT_NULL: u64 = 0;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_RANDOM: u64 = 25;
pub const AT_HWCAP2: u64 = 26;
pub const AT_EXECFN: u64 = 31;
/// AT_HWCAP2 bit: user code may use `rdfsbase`/`wrfsbase` (x86).
pub const HWCAP2_FSGSBASE: u64 = 1 << 1;

/// Most bytes of arguments and environment together (Linux allows a
/// quarter of the 8 MiB stack limit).
pub const MAX_ARG_BYTES: usize = 2 * 1024 * 1024;
/// Longest single argument or environment string, NUL included (Linux
/// `MAX_ARG_STRLEN`).
pub const MAX_ARG_STRLEN: usize = 128 * 1024;

/// A built stack image: `bytes` go at `[top - bytes.len(), top)` and the
/// program starts with `rsp = sp`.
pub struct StackImage {
    pub bytes: Vec<u8>,
    pub sp: u64,
    /// Where the argument strings are: `[start, end)`, NULs included.
    pub args: (u64, u64),
}

/// Lays out the stack for a stack top at `top` (16-byte aligned). Each
/// of `aux_strings` is an auxv entry whose value is the address of its
/// string, copied onto the stack (AT_EXECFN, AT_PLATFORM).
pub fn build(
    top: u64,
    argv: &[&[u8]],
    envp: &[&[u8]],
    auxv: &[(u64, u64)],
    aux_strings: &[(u64, &[u8])],
    random: [u8; 16],
) -> Result<StackImage, i32> {
    let strings: usize = argv.iter().chain(envp).map(|s| s.len() + 1).sum();
    if strings > MAX_ARG_BYTES
        || argv
            .iter()
            .chain(envp)
            .any(|s| s.len() + 1 > MAX_ARG_STRLEN)
    {
        return Err(E2BIG);
    }
    // From the top down: random bytes, strings, then the pointer block.
    let mut high = Vec::new();
    high.extend_from_slice(&random);
    let mut string_offsets = Vec::new();
    let args_start = high.len();
    for s in argv {
        string_offsets.push(high.len());
        high.extend_from_slice(s);
        high.push(0);
    }
    let args_end = high.len();
    for s in envp {
        string_offsets.push(high.len());
        high.extend_from_slice(s);
        high.push(0);
    }
    let mut aux_string_offsets = Vec::new();
    for (_, s) in aux_strings {
        aux_string_offsets.push(high.len());
        high.extend_from_slice(s);
        high.push(0);
    }
    while !high.len().is_multiple_of(16) {
        high.push(0);
    }
    let high_base = top - high.len() as u64;
    let address_of = |offset: usize| high_base + offset as u64;
    let args = (address_of(args_start), address_of(args_end));

    let mut words: Vec<u64> = Vec::new();
    words.push(argv.len() as u64);
    for offset in &string_offsets[..argv.len()] {
        words.push(address_of(*offset));
    }
    words.push(0);
    for offset in &string_offsets[argv.len()..] {
        words.push(address_of(*offset));
    }
    words.push(0);
    for &(key, value) in auxv {
        words.push(key);
        words.push(value);
    }
    for ((key, _), offset) in aux_strings.iter().zip(aux_string_offsets) {
        words.push(*key);
        words.push(address_of(offset));
    }
    words.push(AT_RANDOM);
    words.push(address_of(0));
    words.push(AT_NULL);
    words.push(0);
    if !words.len().is_multiple_of(2) {
        words.push(0); // keep rsp 16-byte aligned
    }

    let low_len = words.len() * 8;
    let sp = high_base - low_len as u64;
    let mut bytes = Vec::with_capacity(low_len + high.len());
    for word in words {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    bytes.extend_from_slice(&high);
    Ok(StackImage { bytes, sp, args })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(image: &StackImage, top: u64, address: u64) -> u64 {
        let base = top - image.bytes.len() as u64;
        let at = (address - base) as usize;
        u64::from_le_bytes(image.bytes[at..at + 8].try_into().unwrap())
    }

    fn c_string(image: &StackImage, top: u64, address: u64) -> Vec<u8> {
        let base = top - image.bytes.len() as u64;
        let at = (address - base) as usize;
        image.bytes[at..]
            .iter()
            .take_while(|&&b| b != 0)
            .copied()
            .collect()
    }

    #[test]
    fn lays_out_argc_argv_envp_auxv() {
        let top = 0x7fff_0000;
        let image = build(
            top,
            &[b"prog", b"arg1"],
            &[b"HOME=/"],
            &[(AT_PAGESZ, 4096)],
            &[(AT_EXECFN, b"/bin/prog")],
            [7; 16],
        )
        .unwrap();
        assert_eq!(image.sp % 16, 0);
        assert_eq!(word(&image, top, image.sp), 2);
        let argv0 = word(&image, top, image.sp + 8);
        assert_eq!(c_string(&image, top, argv0), b"prog");
        assert_eq!(
            c_string(&image, top, word(&image, top, image.sp + 16)),
            b"arg1"
        );
        assert_eq!(word(&image, top, image.sp + 24), 0);
        assert_eq!(
            c_string(&image, top, word(&image, top, image.sp + 32)),
            b"HOME=/"
        );
        assert_eq!(word(&image, top, image.sp + 40), 0);
        assert_eq!(word(&image, top, image.sp + 48), AT_PAGESZ);
        assert_eq!(word(&image, top, image.sp + 56), 4096);
        assert_eq!(word(&image, top, image.sp + 64), AT_EXECFN);
        let execfn = word(&image, top, image.sp + 72);
        assert_eq!(c_string(&image, top, execfn), b"/bin/prog");
        assert_eq!(word(&image, top, image.sp + 80), AT_RANDOM);
        let random = word(&image, top, image.sp + 88);
        let base = top - image.bytes.len() as u64;
        assert_eq!(image.bytes[(random - base) as usize..][..16], [7; 16]);
        assert_eq!(word(&image, top, image.sp + 96), AT_NULL);
        let base = top - image.bytes.len() as u64;
        let (start, end) = image.args;
        let args = &image.bytes[(start - base) as usize..(end - base) as usize];
        assert_eq!(args, b"prog\0arg1\0");
    }

    #[test]
    fn refuses_oversized_arguments() {
        let big = vec![b'x'; MAX_ARG_BYTES];
        assert!(matches!(
            build(0x7fff_0000, &[&big], &[], &[], &[], [0; 16]),
            Err(E2BIG)
        ));
    }
}
