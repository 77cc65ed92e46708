//! The few `/proc` files forkvm has: `/proc/PID/uid_map`, `gid_map` and
//! `setgroups` (and `/proc/self/...`), the Linux interface for setting up
//! a user namespace. They read and write exactly as Linux's do; every other
//! path under `/proc` does not exist.

use alloc::string::String;
use alloc::sync::Arc;

use spin::Mutex;

use crate::errno::{EACCES, EBADF, EINVAL, ENOENT};
use crate::process::cred::{Cred, CAP_DAC_OVERRIDE};
use crate::process::user_ns::{self, IdKind, UserNamespace};

/// Which file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcEntry {
    UidMap,
    GidMap,
    Setgroups,
}

/// An open `/proc/PID/{uid,gid}_map` or `setgroups`: the target task's user
/// namespace at open time and the opener's credentials, which decide what
/// a write may do (Linux `file->f_cred`).
pub struct ProcFile {
    entry: ProcEntry,
    ns: Arc<UserNamespace>,
    opener: Cred,
    readable: bool,
    writable: bool,
    /// The file position.
    pos: Mutex<usize>,
}

const O_ACCMODE: u64 = 3;
const O_WRONLY: u64 = 1;
const O_RDWR: u64 = 2;

/// Opens `path` if it names one of the files above; `self` or a pid in the
/// caller's pid namespace.
pub fn open(path: &[u8], flags: u64) -> Result<ProcFile, i32> {
    let rest = path.strip_prefix(b"/proc/").ok_or(ENOENT)?;
    let mut parts = rest.split(|&b| b == b'/').filter(|p| !p.is_empty());
    let (who, name) = (parts.next().ok_or(ENOENT)?, parts.next().ok_or(ENOENT)?);
    if parts.next().is_some() {
        return Err(ENOENT);
    }
    let current = crate::sched::current();
    let target = if who == b"self" {
        current.clone()
    } else {
        let pid: u32 = core::str::from_utf8(who)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(ENOENT)?;
        let ns = current.active_pid_ns();
        ns.find_task(pid)
            .filter(|task| task.is_group_leader())
            .ok_or(ENOENT)?
    };
    let entry = match name {
        b"uid_map" => ProcEntry::UidMap,
        b"gid_map" => ProcEntry::GidMap,
        b"setgroups" => ProcEntry::Setgroups,
        _ => return Err(ENOENT),
    };
    let mode = flags & O_ACCMODE;
    let opener = current.inner.lock().cred.clone();
    let (ns, owner) = {
        let inner = target.inner.lock();
        // A dumpable process's files belong to its effective user; an
        // undumpable one's (after a credential change) to root (Linux
        // `task_dump_owner`).
        let dumpable = inner
            .mm
            .as_ref()
            .is_some_and(|mm| mm.dumpable.load(core::sync::atomic::Ordering::Relaxed));
        let owner = if dumpable {
            (inner.cred.euid, inner.cred.egid)
        } else {
            (0, 0)
        };
        (inner.cred.user_ns.clone(), owner)
    };
    let writable = mode == O_WRONLY || mode == O_RDWR;
    // The files are mode 0644: only the owner, or CAP_DAC_OVERRIDE over
    // an owner the opener's namespace can name, may write (Linux
    // `generic_permission`, `capable_wrt_inode_uidgid`).
    if writable && opener.euid != owner.0 {
        let nameable = opener.user_ns.id_of(IdKind::Uid, owner.0).is_some()
            && opener.user_ns.id_of(IdKind::Gid, owner.1).is_some();
        if !(nameable && opener.capable_in_own_ns(CAP_DAC_OVERRIDE)) {
            return Err(EACCES);
        }
    }
    // Only who could change the namespace's settings may open setgroups
    // for writing (Linux `proc_setgroups_open`).
    if entry == ProcEntry::Setgroups
        && writable
        && !opener.ns_capable(&ns, crate::process::cred::CAP_SYS_ADMIN)
    {
        return Err(crate::errno::EPERM);
    }
    Ok(ProcFile {
        entry,
        ns,
        opener,
        readable: mode != O_WRONLY,
        writable,
        pos: Mutex::new(0),
    })
}

impl ProcFile {
    fn text(&self) -> String {
        match self.entry {
            ProcEntry::UidMap => self.ns.map_text(IdKind::Uid, &self.opener.user_ns),
            ProcEntry::GidMap => self.ns.map_text(IdKind::Gid, &self.opener.user_ns),
            ProcEntry::Setgroups => String::from(self.ns.setgroups_text()),
        }
    }

    /// Reads from the file position.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, i32> {
        if !self.readable {
            return Err(EBADF);
        }
        let text = self.text();
        let mut pos = self.pos.lock();
        let tail = text.as_bytes().get(*pos..).unwrap_or(&[]);
        let n = tail.len().min(buf.len());
        buf[..n].copy_from_slice(&tail[..n]);
        *pos += n;
        Ok(n)
    }

    /// One write, at position 0, of less than a page (Linux `map_write`,
    /// `proc_setgroups_write`).
    pub fn write(&self, data: &[u8]) -> Result<usize, i32> {
        if !self.writable {
            return Err(EBADF);
        }
        let mut pos = self.pos.lock();
        if *pos != 0 {
            return Err(EINVAL);
        }
        match self.entry {
            ProcEntry::UidMap | ProcEntry::GidMap if data.len() >= 4096 => return Err(EINVAL),
            ProcEntry::UidMap => user_ns::map_write(&self.ns, IdKind::Uid, &self.opener, data)?,
            ProcEntry::GidMap => user_ns::map_write(&self.ns, IdKind::Gid, &self.opener, data)?,
            ProcEntry::Setgroups => user_ns::setgroups_write(&self.ns, data)?,
        }
        *pos = data.len();
        Ok(data.len())
    }
}
