//! Kernel console output (`print!`/`println!`) on the serial port.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;

use crate::drivers::COM1;

/// Serialises writers so lines do not interleave.
static CONSOLE_LOCK: Mutex<()> = Mutex::new(());

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes_translated(s.as_bytes());
        Ok(())
    }
}

/// Whether `\n` goes out as `\r\n` (a terminal needs it; a script's
/// output read through a pipe does not).
static CRLF: AtomicBool = AtomicBool::new(true);

/// Whether `\n` goes out as `\r\n` (the tty's `OPOST | ONLCR`).
pub fn crlf() -> bool {
    CRLF.load(Ordering::Relaxed)
}

/// Chooses terminal (`\r\n`) or plain (`\n`) line endings.
pub fn set_crlf(on: bool) {
    CRLF.store(on, Ordering::Relaxed);
}

/// Whether the last byte written was `\r` (a `\n` after it needs none).
static AFTER_CR: AtomicBool = AtomicBool::new(false);

/// Writes bytes, turning a bare `\n` into `\r\n` for a terminal (like a
/// Linux tty's ONLCR, but leaving `\r\n` that programs send alone).
fn write_bytes_translated(bytes: &[u8]) {
    if !CRLF.load(Ordering::Relaxed) {
        COM1.write_bytes(bytes);
        return;
    }
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if byte == b'\n' {
            let previous_cr = if i > 0 {
                bytes[i - 1] == b'\r'
            } else {
                AFTER_CR.load(Ordering::Relaxed)
            };
            if !previous_cr {
                COM1.write_bytes(&bytes[start..i]);
                COM1.write_bytes(b"\r");
                start = i;
            }
        }
    }
    COM1.write_bytes(&bytes[start..]);
    if let Some(&last) = bytes.last() {
        AFTER_CR.store(last == b'\r', Ordering::Relaxed);
    }
}

/// Writes text from user programs (newline translation as for the kernel's own).
pub fn write_text(bytes: &[u8]) {
    let _guard = CONSOLE_LOCK.lock();
    write_bytes_translated(bytes);
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let _guard = CONSOLE_LOCK.lock();
    let _ = Console.write_fmt(args);
}

/// Prints to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

/// Prints a line to the serial console.
#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::console::_print(format_args!("{}\n", format_args!($($arg)*))));
}
