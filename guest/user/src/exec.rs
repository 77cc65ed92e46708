//! Running another program (feature `heap`): [`ExecImage`] holds the
//! NUL-terminated path, arguments and environment `execve` takes, built
//! before a `fork` so the child only has to make the system call.
//!
//! A program name without a `/` is tried as given first (the forkvm kernel
//! finds its embedded programs by name; Linux resolves it against the
//! current directory), then, if that is `ENOENT`, next to the running
//! program (the directory of its own `argv[0]`), which is where the
//! programs sit when they run on the host's Linux.

extern crate alloc as alloc_crate;

use alloc_crate::vec::Vec;
use core::ffi::CStr;

use crate::errno::Errno;
use crate::shell_parse::sibling_dir;
use crate::syscall::execve;

/// What `execve` needs to start one program, with its fallback path.
pub struct ExecImage {
    /// Paths to try, NUL-terminated: as given, then next to ourselves.
    paths: Vec<Vec<u8>>,
    /// The argument and environment strings, NUL-terminated; `argv` and
    /// `envp` point into them (heap blocks that never move).
    _strings: Vec<Vec<u8>>,
    argv: Vec<*const u8>,
    envp: Vec<*const u8>,
}

fn nul_terminated(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.extend_from_slice(bytes);
    v.push(0);
    v
}

impl ExecImage {
    /// `program` with arguments `args` (`args[0]` is the name the program
    /// sees) and environment `env`; `self_path` is the running program's own
    /// `argv[0]`, for the fallback.
    pub fn new(program: &[u8], args: &[&[u8]], env: &[&[u8]], self_path: &[u8]) -> ExecImage {
        let mut paths = Vec::with_capacity(2);
        paths.push(nul_terminated(program));
        if let Some(dir) = sibling_dir(self_path, program) {
            let mut path = Vec::with_capacity(dir.len() + program.len() + 1);
            path.extend_from_slice(dir);
            path.extend_from_slice(program);
            path.push(0);
            paths.push(path);
        }
        let strings: Vec<Vec<u8>> = args.iter().chain(env).map(|s| nul_terminated(s)).collect();
        let pointers = |range: &[Vec<u8>]| -> Vec<*const u8> {
            range
                .iter()
                .map(|s| s.as_ptr())
                .chain([core::ptr::null()])
                .collect()
        };
        let argv = pointers(&strings[..args.len()]);
        let envp = pointers(&strings[args.len()..]);
        ExecImage {
            paths,
            _strings: strings,
            argv,
            envp,
        }
    }

    /// The paths [`ExecImage::exec`] tries, in order (without their NULs).
    pub fn paths(&self) -> impl Iterator<Item = &[u8]> {
        self.paths.iter().map(|p| &p[..p.len() - 1])
    }

    /// The `argv` array: pointers to NUL-terminated strings, then null.
    pub fn argv(&self) -> &[*const u8] {
        &self.argv
    }

    /// The `envp` array: pointers to NUL-terminated strings, then null.
    pub fn envp(&self) -> &[*const u8] {
        &self.envp
    }

    /// Replaces the calling process with the program; returns only on
    /// failure, with the error of the last path tried (the fallback path is
    /// tried only after `ENOENT`).
    pub fn exec(&self) -> Errno {
        let mut error = Errno::ENOENT;
        for path in &self.paths {
            let path = CStr::from_bytes_until_nul(path).expect("NUL-terminated");
            error = execve(path, &self.argv, &self.envp);
            if error != Errno::ENOENT {
                break;
            }
        }
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::{exit_group, fork, wait4};

    fn string_at(p: *const u8) -> Vec<u8> {
        // SAFETY: the image's strings are NUL-terminated and live.
        unsafe { CStr::from_ptr(p.cast()) }.to_bytes().to_vec()
    }

    #[test]
    fn builds_argv_envp_and_paths() {
        let image = ExecImage::new(b"hello", &[b"hello", b"a b", b""], &[b"X=1"], b"/x/y/sh");
        let paths: Vec<&[u8]> = image.paths().collect();
        assert_eq!(paths, [&b"hello"[..], b"/x/y/hello"]);
        let argv = image.argv();
        assert_eq!(argv.len(), 4);
        assert_eq!(string_at(argv[0]), b"hello");
        assert_eq!(string_at(argv[1]), b"a b");
        assert_eq!(string_at(argv[2]), b"");
        assert!(argv[3].is_null());
        assert_eq!(image.envp().len(), 2);
        assert_eq!(string_at(image.envp()[0]), b"X=1");
        assert!(image.envp()[1].is_null());

        let image = ExecImage::new(b"/bin/x", &[b"x"], &[], b"/x/y/sh");
        assert_eq!(image.paths().count(), 1, "a path has no fallback");
        assert_eq!(image.envp(), [core::ptr::null()]);
        let image = ExecImage::new(b"x", &[b"x"], &[], b"sh");
        assert_eq!(image.paths().count(), 1, "no directory to fall back to");
    }

    #[test]
    fn failures_return_the_errno() {
        let image = ExecImage::new(
            b"forkvm-no-such-program",
            &[b"x"],
            &[],
            b"/forkvm-no-such-dir/sh",
        );
        assert_eq!(image.exec(), Errno::ENOENT);
        // Not executable (even for root, no x bit at all): EACCES, and no
        // fallback is tried.
        let file = std::env::temp_dir().join(format!("forkvm-exec-test-{}", std::process::id()));
        std::fs::write(&file, b"#!/bin/sh\n").unwrap();
        let path = file.to_str().unwrap().as_bytes().to_vec();
        let image = ExecImage::new(&path, &[b"x"], &[], b"/bin/sh");
        assert_eq!(image.exec(), Errno::EACCES);
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn falls_back_to_the_own_directory() {
        if !std::path::Path::new("/bin/true").exists() {
            return;
        }
        // "true" is not in the current directory: found next to "/bin/sh".
        let image = ExecImage::new(b"true", &[b"true"], &[], b"/bin/sh");
        match fork().unwrap() {
            0 => {
                let e = image.exec();
                exit_group(100 + e.0);
            }
            pid => {
                let (_, status) = wait4(pid as i32, 0).unwrap();
                assert!(status.exited(), "{status:?}");
                assert_eq!(status.exit_status(), 0);
            }
        }
    }
}
