//! A script's `#!` line (Linux `binfmt_script`): which interpreter
//! `execve` runs instead, with the script's path as an argument.

use crate::errno::ENOEXEC;

/// How much of a script's first line counts (Linux `BINPRM_BUF_SIZE`).
pub const SHEBANG_MAX: usize = 256;

type Shebang<'a> = Result<(&'a [u8], Option<&'a [u8]>), i32>;

/// A `#!` line's interpreter and optional argument (everything after the
/// interpreter, blanks trimmed, as one argument); `None` if `image` is no
/// script; ENOEXEC for a line with no interpreter or one that does not fit
/// (Linux `load_script`).
pub fn shebang(image: &[u8]) -> Option<Shebang<'_>> {
    let rest = image.strip_prefix(b"#!")?;
    let head = &rest[..rest.len().min(SHEBANG_MAX - 2)];
    let line = match head.iter().position(|&b| b == b'\n') {
        Some(end) => &head[..end],
        None if rest.len() > head.len() => {
            // A line longer than the buffer: Linux accepts it only if the
            // interpreter (and argument) ended within it; keep it simple
            // and refuse, as an unterminated interpreter path would be.
            let interpreter_ends = head
                .iter()
                .skip_while(|b| is_blank(**b))
                .any(|&b| is_blank(b));
            if !interpreter_ends {
                return Some(Err(ENOEXEC));
            }
            head
        }
        None => head,
    };
    let line = trim(line);
    if line.is_empty() {
        return Some(Err(ENOEXEC));
    }
    let split = line.iter().position(|&b| is_blank(b)).unwrap_or(line.len());
    let (interpreter, argument) = line.split_at(split);
    let argument = trim(argument);
    Some(Ok((
        interpreter,
        (!argument.is_empty()).then_some(argument),
    )))
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if !is_blank(*first) {
            break;
        }
        bytes = rest;
    }
    while let [rest @ .., last] = bytes {
        if !is_blank(*last) {
            break;
        }
        bytes = rest;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines() {
        assert_eq!(shebang(b"\x7fELF"), None);
        assert_eq!(
            shebang(b"#!/bin/sh\necho"),
            Some(Ok((&b"/bin/sh"[..], None)))
        );
        assert_eq!(
            shebang(b"#! /bin/sh  -e -x \t\nrest"),
            Some(Ok((&b"/bin/sh"[..], Some(&b"-e -x"[..]))))
        );
        assert_eq!(shebang(b"#!/bin/sh"), Some(Ok((&b"/bin/sh"[..], None))));
        assert_eq!(shebang(b"#!   \n"), Some(Err(ENOEXEC)));
        let mut long = b"#!/".to_vec();
        long.extend_from_slice(&[b'x'; 300]);
        assert_eq!(shebang(&long), Some(Err(ENOEXEC)));
    }
}
