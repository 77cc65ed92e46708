//! The console as a terminal (Linux's tty layer, as far as programs ask):
//! its `termios` and window size, and its foreground process group once a
//! session leader has made it its controlling terminal (`TIOCSCTTY`), for
//! a shell's job control (`TIOCGPGRP`, `TIOCSPGRP`, `TIOCGSID`).
//!
//! The console is a raw byte stream: the shell edits lines itself, so the
//! line discipline does no echo, canonical input or signal keys, and the
//! default `c_lflag` says so (0). The flags a program sets are kept and
//! read back as on Linux; of them only `OPOST | ONLCR` acts (the `\n` ->
//! `\r\n` translation of the output). Not built: SIGTTOU/SIGTTIN for a
//! background group, SIGWINCH, SIGHUP when the session leader exits.

use alloc::sync::{Arc, Weak};

use spin::Mutex;

use crate::process::pid_ns::PidNumbers;

/// `struct termios` as `TCGETS` copies it (36 bytes): `c_iflag`,
/// `c_oflag`, `c_cflag`, `c_lflag` (u32 each), `c_line`, `c_cc[19]`.
pub type Termios = [u8; 36];

const OPOST: u32 = 0o1;
const ONLCR: u32 = 0o4;

/// Linux's `tty_std_termios` for the flags the console has: `ICRNL |
/// IXON`; `OPOST | ONLCR`; `B38400 | CS8 | CREAD | HUPCL`; no local
/// modes (see the module comment); `INIT_C_CC`.
const DEFAULT_TERMIOS: Termios = {
    let mut t = [0u8; 36];
    let iflag = 0o400u32 | 0o2000;
    let oflag = OPOST | ONLCR;
    let cflag = 0o17u32 | 0o60 | 0o200 | 0o2000;
    let words = [iflag, oflag, cflag, 0];
    let mut i = 0;
    while i < 4 {
        let bytes = words[i].to_le_bytes();
        let mut j = 0;
        while j < 4 {
            t[i * 4 + j] = bytes[j];
            j += 1;
        }
        i += 1;
    }
    let cc: [u8; 17] = [3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0];
    let mut k = 0;
    while k < cc.len() {
        t[17 + k] = cc[k];
        k += 1;
    }
    t
};

struct TtyState {
    termios: Termios,
    /// `struct winsize`: rows, columns, x and y pixels (u16 each).
    winsize: [u8; 8],
    /// The session whose controlling terminal it is (Linux
    /// `tty->session`): gone when that session's pid is released.
    session: Option<Weak<PidNumbers>>,
    /// The foreground process group (Linux `tty->pgrp`).
    pgrp: Option<Weak<PidNumbers>>,
}

static CONSOLE: Mutex<TtyState> = Mutex::new(TtyState {
    termios: DEFAULT_TERMIOS,
    winsize: [0; 8],
    session: None,
    pgrp: None,
});

/// The console's termios, with `ONLCR` as the output path does it now.
pub fn termios() -> Termios {
    let mut termios = CONSOLE.lock().termios;
    let mut oflag = u32::from_le_bytes(termios[4..8].try_into().expect("4 bytes"));
    oflag &= !ONLCR;
    if crate::console::crlf() {
        oflag |= OPOST | ONLCR;
    }
    termios[4..8].copy_from_slice(&oflag.to_le_bytes());
    termios
}

/// Sets the termios (`TCSETS*`); `OPOST | ONLCR` turn the newline
/// translation on, anything else off.
pub fn set_termios(termios: Termios) {
    let oflag = u32::from_le_bytes(termios[4..8].try_into().expect("4 bytes"));
    crate::console::set_crlf(oflag & (OPOST | ONLCR) == OPOST | ONLCR);
    CONSOLE.lock().termios = termios;
}

pub fn winsize() -> [u8; 8] {
    CONSOLE.lock().winsize
}

pub fn set_winsize(winsize: [u8; 8]) {
    CONSOLE.lock().winsize = winsize;
}

fn alive(id: &Option<Weak<PidNumbers>>) -> Option<Arc<PidNumbers>> {
    id.as_ref().and_then(Weak::upgrade)
}

/// Whether the console is the controlling terminal of `session`.
pub fn is_controlling(session: &Arc<PidNumbers>) -> bool {
    alive(&CONSOLE.lock().session).is_some_and(|s| Arc::ptr_eq(&s, session))
}

/// The session the console controls, if any.
pub fn session() -> Option<Arc<PidNumbers>> {
    alive(&CONSOLE.lock().session)
}

/// Makes the console the controlling terminal of `session`, with `pgrp`
/// in the foreground.
pub fn set_controlling(session: &Arc<PidNumbers>, pgrp: &Arc<PidNumbers>) {
    let mut tty = CONSOLE.lock();
    tty.session = Some(Arc::downgrade(session));
    tty.pgrp = Some(Arc::downgrade(pgrp));
}

/// Detaches the console from its session (`TIOCNOTTY` by the leader).
pub fn clear_controlling() {
    let mut tty = CONSOLE.lock();
    tty.session = None;
    tty.pgrp = None;
}

/// The foreground process group.
pub fn foreground() -> Option<Arc<PidNumbers>> {
    alive(&CONSOLE.lock().pgrp)
}

pub fn set_foreground(pgrp: &Arc<PidNumbers>) {
    CONSOLE.lock().pgrp = Some(Arc::downgrade(pgrp));
}
