//! What `poll` and `select` ask of an open file (Linux `vfs_poll` and
//! each file's `->poll`): its ready events now, and the wait queue to
//! sleep on until they may change.
//!
//! Pipes and the consoles have queues their writers and readers already
//! wake. Files of the tree, `/proc` files and the devices (`/dev/null`,
//! `/dev/zero`) have no `->poll` in Linux: always readable and writable
//! (`DEFAULT_POLLMASK`). A pidfd becomes readable when its process has
//! exited; no queue tells of that here, so a waiter on one looks again at
//! every tick ([`Readiness::recheck`]).

use super::{File, FileKind};
use crate::sched::wait::WaitQueue;

// The event bits (`uapi/asm-generic/poll.h`; x86 uses them as they are).
pub const POLLIN: u16 = 0x1;
pub const POLLPRI: u16 = 0x2;
pub const POLLOUT: u16 = 0x4;
pub const POLLERR: u16 = 0x8;
pub const POLLHUP: u16 = 0x10;
pub const POLLNVAL: u16 = 0x20;
pub const POLLRDNORM: u16 = 0x40;
pub const POLLRDBAND: u16 = 0x80;
pub const POLLWRNORM: u16 = 0x100;
pub const POLLWRBAND: u16 = 0x200;

/// What a file without a `->poll` reports (Linux `DEFAULT_POLLMASK`).
pub const DEFAULT_POLLMASK: u16 = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;

/// A file's answer to `poll`.
pub struct Readiness<'a> {
    /// The events that hold now.
    pub mask: u16,
    /// Where a change of them is announced (none: they never change, or
    /// see `recheck`).
    pub queue: Option<&'a WaitQueue>,
    /// The events may change with no queue woken: look again each tick.
    pub recheck: bool,
}

/// Whether `poll` may look at `file` at all: an O_PATH descriptor is not
/// one (Linux's `fdget` skips FMODE_PATH files: POLLNVAL, and `select`
/// ignores it).
pub fn pollable(file: &File) -> bool {
    match &file.kind {
        FileKind::Vfs(open) => open.flags() & super::file::O_PATH == 0,
        _ => true,
    }
}

/// `file`'s events and queue (Linux `vfs_poll`). A waiter goes on the
/// queue before it takes the events it acts on (see `syscall/select.rs`).
pub fn poll(file: &File) -> Readiness<'_> {
    let (mask, queue, recheck) = match &file.kind {
        FileKind::PipeRead(pipe) => {
            let (mask, queue) = pipe.poll(true);
            (mask, Some(queue), false)
        }
        FileKind::PipeWrite(pipe) => {
            let (mask, queue) = pipe.poll(false);
            (mask, Some(queue), false)
        }
        FileKind::Console => {
            // Output never waits; input is ready once a byte is buffered
            // (Linux `n_tty_poll` with the raw line discipline here).
            use crate::drivers::uart::{INPUT, INPUT_WAIT};
            let mut mask = POLLOUT | POLLWRNORM;
            if !INPUT.is_empty() {
                mask |= POLLIN | POLLRDNORM;
            }
            (mask, Some(&INPUT_WAIT), false)
        }
        FileKind::VirtioConsole => {
            let (readable, queue) = crate::drivers::virtio_console::poll_readable();
            let mut mask = POLLOUT | POLLWRNORM;
            if readable {
                mask |= POLLIN | POLLRDNORM;
            }
            (mask, Some(queue), false)
        }
        FileKind::Pidfd(task) => (pidfd_mask(task), None, true),
        FileKind::Proc(_) | FileKind::Vfs(_) => (DEFAULT_POLLMASK, None, false),
    };
    Readiness {
        mask,
        queue,
        recheck,
    }
}

/// Linux `pidfd_poll`: readable once the process has exited (its last
/// thread a zombie), and hung up too once it is reaped.
fn pidfd_mask(task: &alloc::sync::Weak<crate::process::task::Task>) -> u16 {
    use crate::process::task::TaskState;
    let Some(task) = task.upgrade() else {
        return POLLIN | POLLRDNORM | POLLHUP;
    };
    match task.state() {
        TaskState::Dead => POLLIN | POLLRDNORM | POLLHUP,
        TaskState::Zombie if !task.thread_group().has_other_threads(&task) => POLLIN | POLLRDNORM,
        _ => 0,
    }
}
