//! Formatted output over `write(2)`, without a heap.
//!
//! `print!` and friends format into a 512-byte stack buffer and write it out
//! when it fills and at the end, so a short line leaves in a single
//! `write` (lines from several processes do not interleave mid-line).
//! Write errors are ignored, as there is nowhere to report them.

use core::fmt;

use crate::errno::Errno;
use crate::syscall::write_all;

/// Standard output.
pub const STDOUT: i32 = 1;
/// Standard error.
pub const STDERR: i32 = 2;

/// An unbuffered [`fmt::Write`] over a file descriptor: each `write_str`
/// is written out whole (retrying short writes).
#[derive(Clone, Copy, Debug)]
pub struct FdWriter(pub i32);

impl fmt::Write for FdWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_all(self.0, s.as_bytes()).map_err(|_| fmt::Error)
    }
}

/// A [`fmt::Write`] that collects output in an `N`-byte buffer and writes it
/// to `fd` when full and on [`BufWriter::flush`].
pub struct BufWriter<const N: usize> {
    fd: i32,
    len: usize,
    buf: [u8; N],
}

impl<const N: usize> BufWriter<N> {
    /// An empty buffer for `fd`.
    pub const fn new(fd: i32) -> Self {
        Self {
            fd,
            len: 0,
            buf: [0; N],
        }
    }

    /// Writes out whatever is buffered.
    pub fn flush(&mut self) -> Result<(), Errno> {
        let n = core::mem::take(&mut self.len);
        write_all(self.fd, &self.buf[..n])
    }

    /// Buffers `bytes`, writing out full buffers.
    pub fn write_bytes(&mut self, mut bytes: &[u8]) -> Result<(), Errno> {
        while !bytes.is_empty() {
            if self.len == N {
                self.flush()?;
            }
            let n = bytes.len().min(N - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

impl<const N: usize> fmt::Write for BufWriter<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes()).map_err(|_| fmt::Error)
    }
}

/// Implementation of the printing macros: formats `args` to `fd`.
#[doc(hidden)]
pub fn _print(fd: i32, args: fmt::Arguments<'_>) {
    let mut w = BufWriter::<512>::new(fd);
    let _ = fmt::Write::write_fmt(&mut w, args);
    let _ = w.flush();
}

/// Writes raw bytes (for example a `&[u8]` argument that may not be UTF-8)
/// to `fd`, ignoring errors.
pub fn write_bytes(fd: i32, bytes: &[u8]) {
    let _ = write_all(fd, bytes);
}

/// Like std's `print!`, to file descriptor 1.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::io::_print($crate::io::STDOUT, format_args!($($arg)*)) };
}

/// Like std's `println!`, to file descriptor 1.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {
        $crate::io::_print($crate::io::STDOUT, format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Like std's `eprint!`, to file descriptor 2.
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::io::_print($crate::io::STDERR, format_args!($($arg)*)) };
}

/// Like std's `eprintln!`, to file descriptor 2.
#[macro_export]
macro_rules! eprintln {
    () => { $crate::eprint!("\n") };
    ($($arg:tt)*) => {
        $crate::io::_print($crate::io::STDERR, format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Displays a byte string as text, replacing invalid UTF-8 with U+FFFD.
#[derive(Clone, Copy)]
pub struct Bytes<'a>(pub &'a [u8]);

impl fmt::Display for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::{close, pipe2, read};
    use core::fmt::Write;

    #[test]
    fn buffered_writer_flushes_when_full_and_at_the_end() {
        let [r, w] = pipe2(0).unwrap();
        let mut out = BufWriter::<4>::new(w);
        let word = "ab";
        write!(out, "{}-{word}", 12345).unwrap();
        out.flush().unwrap();
        close(w).unwrap();
        let mut buf = [0u8; 32];
        let mut n = 0;
        loop {
            match read(r, &mut buf[n..]).unwrap() {
                0 => break,
                k => n += k,
            }
        }
        assert_eq!(&buf[..n], b"12345-ab");
        close(r).unwrap();
    }

    #[test]
    fn bytes_display() {
        assert_eq!(format!("{}", Bytes(b"a\xffb")), "a\u{fffd}b");
        assert_eq!(format!("{}", Bytes(b"plain")), "plain");
    }
}
