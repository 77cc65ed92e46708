//! The few `/proc` files forkvm has: `/proc/PID/uid_map`, `gid_map` and
//! `setgroups` (and `/proc/self/...`), the Linux interface for setting up
//! a user namespace, which read and write exactly as Linux's do; the
//! read-only `/proc/PID/stat`, `status`, `cmdline`, `/proc/meminfo` and
//! `/proc/cpuinfo` in Linux's format, generated at open (Linux generates
//! them at the first read); the directories `/proc` (`self` links to the
//! caller's pid) and `/proc/PID`; the directory `/proc/PID/fd`, one
//! symbolic link per open descriptor (`/proc/PID/exe` is a link too); and the
//! sysctls under `/proc/sys` (`kernel/threads-max`, ...), whose
//! directories (`/proc/sys`, `/proc/sys/kernel`, ...) list them. Every other
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
    /// A read-only file whose text was generated at open.
    Generated,
    /// `/proc/PID/fd`: a directory, listed at each `getdents64`.
    FdDir,
    /// `/proc` or `/proc/PID`: a directory, listed at open.
    Dir,
    /// A file under `/proc/sys`: one sysctl's value.
    Sysctl,
}

/// An entry of a `/proc` directory: (name, inode number, `S_IF*` type).
pub type DirEntry = (alloc::boxed::Box<[u8]>, u64, u32);

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
    /// The bytes of a [`ProcEntry::Generated`] file.
    generated: alloc::vec::Vec<u8>,
    /// The descriptor table a [`ProcEntry::FdDir`] lists (at each
    /// `getdents64`, as Linux does: the directory's own descriptor shows).
    fd_table: Option<Arc<Mutex<crate::process::files::FdTable>>>,
    /// The entries of a [`ProcEntry::Dir`].
    listing: alloc::vec::Vec<DirEntry>,
    /// The dotted name of a [`ProcEntry::Sysctl`].
    sysctl: alloc::vec::Vec<u8>,
    /// The path it was opened by (what `/proc/PID/fd/N` shows for it).
    pub path: alloc::vec::Vec<u8>,
}

const O_ACCMODE: u64 = 3;
const O_WRONLY: u64 = 1;
const O_RDWR: u64 = 2;

/// Opens `path` if it names one of the files above; `self` or a pid in the
/// caller's pid namespace.
pub fn open(path: &[u8], flags: u64) -> Result<ProcFile, i32> {
    let mut file = open_entry(path, flags)?;
    file.path = path.to_vec();
    Ok(file)
}

fn open_entry(path: &[u8], flags: u64) -> Result<ProcFile, i32> {
    let rest = path.strip_prefix(b"/proc").ok_or(ENOENT)?;
    let parts: alloc::vec::Vec<&[u8]> = rest
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    let (who, name) = match parts[..] {
        [] => return open_dir(root_entries(), flags),
        [b"meminfo"] => return read_only(meminfo(), flags),
        [b"cpuinfo"] => return read_only(cpuinfo(), flags),
        [b"sys", ref rest @ ..] => {
            return match sysctl_dir(rest) {
                Some(listing) => open_dir(listing, flags),
                None => open_sysctl(rest, flags),
            }
        }
        [who, b"fd"] => return open_fd_dir(who, flags),
        [who] => {
            find_process(who)?;
            return open_dir(
                PID_ENTRIES.iter().map(|&(n, k)| entry(n, k)).collect(),
                flags,
            );
        }
        [who, name] => (who, name),
        _ => return Err(ENOENT),
    };
    let current = crate::sched::current();
    let target = find_process(who)?;
    let entry = match name {
        b"uid_map" => ProcEntry::UidMap,
        b"gid_map" => ProcEntry::GidMap,
        b"setgroups" => ProcEntry::Setgroups,
        b"stat" => return read_only(stat(&target, &current), flags),
        b"status" => return read_only(status(&target, &current), flags),
        b"cmdline" => return read_only(cmdline(&target), flags),
        _ => return Err(ENOENT),
    };
    let mode = flags & O_ACCMODE;
    let opener = current.cred();
    let (ns, owner) = {
        let cred = target.cred();
        // A dumpable process's files belong to its effective user; an
        // undumpable one's (after a credential change) to root (Linux
        // `task_dump_owner`).
        let owner = if target.is_dumpable() {
            (cred.euid, cred.egid)
        } else {
            (0, 0)
        };
        (cred.user_ns, owner)
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
        generated: alloc::vec::Vec::new(),
        fd_table: None,
        listing: alloc::vec::Vec::new(),
        sysctl: alloc::vec::Vec::new(),
        path: alloc::vec::Vec::new(),
    })
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// What `/proc/PID` holds.
const PID_ENTRIES: [(&[u8], u32); 8] = [
    (b"cmdline", S_IFREG),
    (b"exe", S_IFLNK),
    (b"fd", S_IFDIR),
    (b"gid_map", S_IFREG),
    (b"setgroups", S_IFREG),
    (b"stat", S_IFREG),
    (b"status", S_IFREG),
    (b"uid_map", S_IFREG),
];

/// Inode numbers of the entries listed by `/proc` and `/proc/PID` (made
/// up, as Linux's are).
const LISTED_INO_BASE: u64 = 1 << 41;

fn entry(name: &[u8], kind: u32) -> DirEntry {
    (name.into(), LISTED_INO_BASE, kind)
}

/// `/proc`'s entries: `self`, the files, then a directory per process of
/// the caller's pid namespace (thread-group leaders, as Linux lists).
fn root_entries() -> alloc::vec::Vec<DirEntry> {
    let mut entries = alloc::vec![
        entry(b"cpuinfo", S_IFREG),
        entry(b"meminfo", S_IFREG),
        entry(b"self", S_IFLNK),
        entry(b"sys", S_IFDIR),
    ];
    let ns = crate::sched::current().active_pid_ns();
    let mut pids: alloc::vec::Vec<u32> = ns
        .pids()
        .iter()
        .filter(|pid| pid.task().is_some_and(|task| task.is_group_leader()))
        .filter_map(|pid| pid.nr_in(&ns))
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let name = alloc::format!("{pid}");
        entries.push((
            name.into_bytes().into(),
            LISTED_INO_BASE + u64::from(pid),
            S_IFDIR,
        ));
    }
    entries
}

/// A directory listed at open (mode 0555): EISDIR for writing.
fn open_dir(listing: alloc::vec::Vec<DirEntry>, flags: u64) -> Result<ProcFile, i32> {
    let mode = flags & O_ACCMODE;
    if mode == O_WRONLY || mode == O_RDWR {
        return Err(crate::errno::EISDIR);
    }
    let mut file = read_only(alloc::vec::Vec::new(), flags)?;
    file.entry = ProcEntry::Dir;
    file.listing = listing;
    Ok(file)
}

/// `/proc/PID/fd` (mode 0500, the process's owner's): EISDIR for
/// writing, EACCES unless the caller may inspect the process (Linux
/// `proc_fd_permission`: `ptrace_may_access`).
fn open_fd_dir(who: &[u8], flags: u64) -> Result<ProcFile, i32> {
    let target = find_process(who)?;
    let mode = flags & O_ACCMODE;
    if mode == O_WRONLY || mode == O_RDWR {
        return Err(crate::errno::EISDIR);
    }
    let current = crate::sched::current();
    if !crate::process::cred::ptrace_may_read(&current, &target) {
        return Err(EACCES);
    }
    let mut file = read_only(alloc::vec::Vec::new(), flags)?;
    file.entry = ProcEntry::FdDir;
    file.fd_table = target.files();
    Ok(file)
}

/// Inode numbers of `/proc/PID/fd` entries (made up, as Linux's are).
const FD_INO_BASE: u64 = 1 << 40;

/// The descriptor `fd` of the process `who` names (`/proc/PID/fd/N`),
/// if the caller may inspect it (EACCES) and it is open (ENOENT).
pub fn fd_file(who: &[u8], fd: &[u8]) -> Result<Arc<crate::fs::File>, i32> {
    let target = find_process(who)?;
    let current = crate::sched::current();
    if !crate::process::cred::ptrace_may_read(&current, &target) {
        return Err(EACCES);
    }
    let fd: u64 = core::str::from_utf8(fd)
        .ok()
        // Digits only, no leading zero (Linux `name_to_int`).
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()) && (s.len() == 1 || !s.starts_with('0')))
        .and_then(|s| s.parse().ok())
        .ok_or(ENOENT)?;
    let files = target.files().ok_or(ENOENT)?;
    let file = files.lock().get(fd).map_err(|_| ENOENT)?;
    Ok(file)
}

/// What `/proc/PID/fd/N` links to (Linux `d_path` of the file, or the
/// name of an anonymous one): a file's path (" (deleted)" once its last
/// name is gone), `pipe:[INO]`, the console, `anon_inode:[pidfd]`.
pub fn fd_link(file: &crate::fs::File) -> alloc::vec::Vec<u8> {
    use crate::fs::dentry::Node;
    use crate::fs::FileKind;
    match &file.kind {
        FileKind::Console => b"/dev/console".to_vec(),
        FileKind::VirtioConsole => b"/dev/hvc0".to_vec(),
        FileKind::PipeRead(pipe) | FileKind::PipeWrite(pipe) => {
            alloc::format!("pipe:[{}]", pipe.ino).into_bytes()
        }
        FileKind::Pidfd(_) => b"anon_inode:[pidfd]".to_vec(),
        FileKind::Proc(proc) => proc.path.clone(),
        FileKind::Vfs(open) => match &open.node {
            Node::Dir(dir) => {
                let root = crate::fs::current::current_fs().lock().root.clone();
                let mut path = crate::fs::namei::path_from(dir, &root).0;
                if dir.is_dead() {
                    path.extend_from_slice(b" (deleted)");
                }
                path
            }
            Node::Inode(inode) => {
                let mut path = open.path.as_deref().unwrap_or(b"/").to_vec();
                if inode.meta().nlink == 0 {
                    path.extend_from_slice(b" (deleted)");
                }
                path
            }
        },
    }
}

/// The entries of the directory `/proc/sys/PARTS...` (the next
/// component of each sysctl name under it: a directory if more follow,
/// else the sysctl's file); None if no sysctl lies under it.
fn sysctl_dir(parts: &[&[u8]]) -> Option<alloc::vec::Vec<DirEntry>> {
    let mut listing: alloc::vec::Vec<DirEntry> = alloc::vec::Vec::new();
    let mut any = false;
    for name in crate::syscall::forkvm::SYSCTL_NAMES {
        let components: alloc::vec::Vec<&[u8]> = name.split(|&b| b == b'.').collect();
        if components.len() <= parts.len() || components[..parts.len()] != *parts {
            continue;
        }
        any = true;
        let child = components[parts.len()];
        let kind = if components.len() > parts.len() + 1 {
            S_IFDIR
        } else {
            S_IFREG
        };
        if !listing.iter().any(|(listed, _, _)| **listed == *child) {
            listing.push(entry(child, kind));
        }
    }
    any.then_some(listing)
}

/// A sysctl's file, `/proc/sys/A/B` for sysctl `A.B` (mode 0644, or 0444
/// for those the caller may not set): EACCES to open for writing without
/// the right (Linux `proc_sys_permission`), ENOENT for an unknown name.
fn open_sysctl(parts: &[&[u8]], flags: u64) -> Result<ProcFile, i32> {
    let name = parts.join(&b'.');
    crate::syscall::forkvm::sysctl(&name, None)?;
    let mode = flags & O_ACCMODE;
    let writable = mode == O_WRONLY || mode == O_RDWR;
    if writable && !crate::syscall::forkvm::may_write_sysctl(&name) {
        return Err(EACCES);
    }
    let opener = crate::sched::current().cred();
    Ok(ProcFile {
        entry: ProcEntry::Sysctl,
        ns: opener.user_ns.clone(),
        opener,
        readable: mode != O_WRONLY,
        writable,
        pos: Mutex::new(0),
        generated: alloc::vec::Vec::new(),
        fd_table: None,
        listing: alloc::vec::Vec::new(),
        sysctl: name,
        path: alloc::vec::Vec::new(),
    })
}

/// What `stat` says of a `/proc` path that is not a link: (mode, nlink),
/// ENOENT if there is no such file.
pub fn mode_of(path: &[u8]) -> Result<(u32, u64), i32> {
    let rest = path.strip_prefix(b"/proc").ok_or(ENOENT)?;
    let parts: alloc::vec::Vec<&[u8]> = rest
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    match parts[..] {
        [] => Ok((S_IFDIR | 0o555, 2)),
        [b"meminfo"] | [b"cpuinfo"] => Ok((S_IFREG | 0o444, 1)),
        [b"sys", ref rest @ ..] if sysctl_dir(rest).is_some() => Ok((S_IFDIR | 0o555, 2)),
        [b"sys", ref rest @ ..] => {
            let name = rest.join(&b'.');
            crate::syscall::forkvm::sysctl(&name, None)?;
            Ok((S_IFREG | 0o644, 1))
        }
        [who] => find_process(who).map(|_| (S_IFDIR | 0o555, 2)),
        [who, b"fd"] => find_process(who).map(|_| (S_IFDIR | 0o500, 2)),
        [who, b"uid_map" | b"gid_map" | b"setgroups"] => {
            find_process(who).map(|_| (S_IFREG | 0o644, 1))
        }
        [who, b"stat" | b"status" | b"cmdline"] => find_process(who).map(|_| (S_IFREG | 0o444, 1)),
        _ => Err(ENOENT),
    }
}

/// The process `who` names: `self` or a pid in the caller's pid
/// namespace that leads its thread group.
fn find_process(who: &[u8]) -> Result<Arc<crate::process::task::Task>, i32> {
    let current = crate::sched::current();
    if who == b"self" {
        return Ok(current);
    }
    let pid: u32 = core::str::from_utf8(who)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ENOENT)?;
    current
        .active_pid_ns()
        .find_task(pid)
        .filter(|task| task.is_group_leader())
        .ok_or(ENOENT)
}

/// `readlink` of a `/proc` path: `/proc/PID/exe` is the program the
/// process runs (its absolute path); the other files are no links
/// (EINVAL); anything else does not exist (ENOENT).
pub fn readlink(path: &[u8]) -> Result<alloc::vec::Vec<u8>, i32> {
    let rest = path.strip_prefix(b"/proc/").ok_or(ENOENT)?;
    let parts: alloc::vec::Vec<&[u8]> = rest
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    match parts[..] {
        [who, b"fd", fd] => Ok(fd_link(&*fd_file(who, fd)?)),
        [b"self"] => {
            let current = crate::sched::current();
            Ok(alloc::format!("{}", current.tgid_in(&current.active_pid_ns())).into_bytes())
        }
        [b"meminfo"] | [b"cpuinfo"] | [_, b"fd"] => Err(EINVAL),
        [b"sys", ..] => mode_of(path).and(Err(EINVAL)),
        [who, name] => {
            let task = find_process(who)?;
            match name {
                b"exe" => task
                    .mm()
                    .and_then(|mm| mm.inner.lock().exe_path.clone())
                    .map(|p| p.to_vec())
                    .ok_or(ENOENT),
                b"uid_map" | b"gid_map" | b"setgroups" | b"stat" | b"status" | b"cmdline" => {
                    Err(EINVAL)
                }
                _ => Err(ENOENT),
            }
        }
        _ => Err(ENOENT),
    }
}

/// A generated file (mode 0444): opening it for writing needs
/// CAP_DAC_OVERRIDE (EACCES), and a write is EINVAL (it has no write
/// operation).
fn read_only(text: impl Into<alloc::vec::Vec<u8>>, flags: u64) -> Result<ProcFile, i32> {
    let current = crate::sched::current();
    let opener = current.cred();
    let mode = flags & O_ACCMODE;
    let writable = mode == O_WRONLY || mode == O_RDWR;
    if writable && !opener.capable_in_own_ns(CAP_DAC_OVERRIDE) {
        return Err(EACCES);
    }
    Ok(ProcFile {
        entry: ProcEntry::Generated,
        ns: opener.user_ns.clone(),
        opener,
        readable: mode != O_WRONLY,
        writable,
        pos: Mutex::new(0),
        generated: text.into(),
        fd_table: None,
        listing: alloc::vec::Vec::new(),
        sysctl: alloc::vec::Vec::new(),
        path: alloc::vec::Vec::new(),
    })
}

/// `/proc/cpuinfo`: a block per CPU with the fields programs parse
/// (`processor`, vendor, family, model, `cpu cores`, `flags` ...), from
/// CPUID.
fn cpuinfo() -> String {
    use crate::arch::cpu::cpuid;
    let vendor_regs = cpuid(0, 0);
    let mut vendor = alloc::vec::Vec::new();
    for reg in [vendor_regs.ebx, vendor_regs.edx, vendor_regs.ecx] {
        vendor.extend_from_slice(&reg.to_le_bytes());
    }
    let signature = cpuid(1, 0).eax;
    let base_family = (signature >> 8) & 0xf;
    let family = if base_family == 0xf {
        base_family + ((signature >> 20) & 0xff)
    } else {
        base_family
    };
    let model = if base_family == 0x6 || base_family == 0xf {
        ((signature >> 4) & 0xf) | ((signature >> 12) & 0xf0)
    } else {
        (signature >> 4) & 0xf
    };
    let mut brand = alloc::vec::Vec::new();
    if cpuid(0x8000_0000, 0).eax >= 0x8000_0004 {
        for leaf in 0x8000_0002..=0x8000_0004 {
            let r = cpuid(leaf, 0);
            for reg in [r.eax, r.ebx, r.ecx, r.edx] {
                brand.extend_from_slice(&reg.to_le_bytes());
            }
        }
    }
    let brand = String::from_utf8_lossy(&brand);
    let brand = brand.trim_matches(|c: char| c == '\0' || c == ' ');
    let cpus = crate::arch::percpu::nr_cpus();
    let mut text = String::new();
    for cpu in 0..cpus {
        text.push_str(&alloc::format!(
            "processor\t: {cpu}\nvendor_id\t: {}\ncpu family\t: {family}\nmodel\t\t: {model}\n\
             model name\t: {brand}\nstepping\t: {}\nphysical id\t: 0\nsiblings\t: {cpus}\n\
             core id\t\t: {cpu}\ncpu cores\t: {cpus}\napicid\t\t: {cpu}\nfpu\t\t: yes\n\
             flags\t\t: fpu tsc msr pae cx8 apic sep pge cmov pat clflush mmx fxsr sse sse2 \
             syscall nx lm\n\n",
            String::from_utf8_lossy(&vendor),
            signature & 0xf,
        ));
    }
    text
}

/// `/proc/meminfo`'s first lines (kB), from the frame allocator.
fn meminfo() -> String {
    let (total, free) = crate::mm::frame_counts();
    let kb = |frames: usize| frames * 4;
    alloc::format!(
        "MemTotal:       {:8} kB\nMemFree:        {:8} kB\nMemAvailable:   {:8} kB\n\
         Buffers:               0 kB\nCached:                0 kB\n\
         SwapTotal:             0 kB\nSwapFree:              0 kB\n",
        kb(total),
        kb(free),
        kb(free)
    )
}

/// The one-letter state of `/proc/PID/stat` and `status`.
fn state(task: &crate::process::task::Task) -> (char, &'static str) {
    use crate::process::task::TaskState;
    match task.state() {
        TaskState::Zombie | TaskState::Dead => ('Z', "zombie"),
        TaskState::Sleeping => ('S', "sleeping"),
        _ => ('R', "running"),
    }
}

/// Ids of `task` as the reader's pid namespace sees them: (pid, ppid,
/// pgrp, session, threads).
fn ids(
    task: &crate::process::task::Task,
    reader: &crate::process::task::Task,
) -> (u32, u32, u32, u32, usize) {
    let ns = reader.active_pid_ns();
    let group = task.thread_group();
    let nr = |pids: Option<Arc<crate::process::pid_ns::PidNumbers>>| {
        pids.and_then(|p| p.nr_in(&ns)).unwrap_or(0)
    };
    (
        task.tgid_in(&ns),
        task.parent().map_or(0, |p| p.tgid_in(&ns)),
        nr(group.pgrp()),
        nr(group.session()),
        group.threads().len(),
    )
}

fn comm(task: &crate::process::task::Task) -> String {
    let comm = task.comm();
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

/// `/proc/PID/stat`: Linux's 52 fields. The process's CPU times and its
/// reaped children's (fields 14-17) are in clock ticks (`USER_HZ`), as
/// `times` reports them; priority and nice (18, 19) are Linux's
/// `task_prio` (20 + nice for a fair task, -1 - rt_priority for a
/// real-time one) and `task_nice`; processor, rt_priority and policy
/// (39-41) are the task's. Faults, start time and addresses this kernel
/// does not keep are 0.
fn stat(task: &crate::process::task::Task, reader: &crate::process::task::Task) -> String {
    use crate::sched::cputime;
    let (pid, ppid, pgrp, session, threads) = ids(task, reader);
    let (pages, rss) = task.mm().map_or((0, 0), |mm| {
        let usage = mm.memory_usage();
        (usage.total_vm_pages, usage.anon_pages + usage.shmem_pages)
    });
    let group = task.thread_group();
    let ticks = |cycles: u64| cputime::ns_to_clock_t(crate::time::tsc_to_ns(cycles));
    let own = cputime::group_totals(group, Some(reader));
    let children = cputime::children_totals(group);
    let attr = task.sched().get();
    let priority = if crate::sched::attr::rt_policy(attr.policy) {
        -1 - attr.rt_priority as i32
    } else {
        20 + attr.nice
    };
    let mut text = alloc::format!(
        "{pid} ({}) {} {ppid} {pgrp} {session} 0 -1 0 0 0 0 0 {} {} {} {} {priority} {} \
         {threads} 0 0 {} {rss} 18446744073709551615",
        comm(task),
        state(task).0,
        ticks(own.utime),
        ticks(own.stime),
        ticks(children.utime),
        ticks(children.stime),
        attr.nice,
        pages * 4096,
    );
    // startcode .. cnswap: 12 fields, then exit_signal, processor,
    // rt_priority, policy, then delayacct_blkio_ticks .. exit_code: 11.
    for _ in 0..12 {
        text.push_str(" 0");
    }
    text.push_str(&alloc::format!(
        " {} {} {} {}",
        group.exit_signal(),
        task.sched().cpu(),
        attr.rt_priority,
        attr.policy
    ));
    for _ in 0..11 {
        text.push_str(" 0");
    }
    text.push('\n');
    text
}

/// `/proc/PID/cmdline`: the argument strings in the process's memory,
/// NULs included (empty for a zombie, which has no memory left).
fn cmdline(task: &crate::process::task::Task) -> alloc::vec::Vec<u8> {
    let Some(mm) = task.mm() else {
        return alloc::vec::Vec::new();
    };
    let (start, end) = {
        let inner = mm.inner.lock();
        (inner.arg_start, inner.arg_end)
    };
    let mut bytes = alloc::vec![0u8; end.saturating_sub(start).min(4096) as usize];
    if mm.copy_from_user(start, &mut bytes).is_err() {
        bytes.clear();
    }
    bytes
}

/// `/proc/PID/status`: the lines `ps`-like tools read, ending with the
/// task's context switches (Linux `task_context_switch_counts`).
fn status(task: &crate::process::task::Task, reader: &crate::process::task::Task) -> String {
    let (pid, ppid, _, _, threads) = ids(task, reader);
    let (letter, word) = state(task);
    let cred = task.cred();
    let seen = reader.cred();
    let uid = |kuid| seen.uid_seen(kuid);
    let gid = |kgid| seen.gid_seen(kgid);
    let switches = crate::sched::cputime::thread_totals(task);
    alloc::format!(
        "Name:\t{}\nState:\t{letter} ({word})\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t{ppid}\n\
         Uid:\t{}\t{}\t{}\t{}\nGid:\t{}\t{}\t{}\t{}\nThreads:\t{threads}\n\
         voluntary_ctxt_switches:\t{}\nnonvoluntary_ctxt_switches:\t{}\n",
        comm(task),
        uid(cred.uid),
        uid(cred.euid),
        uid(cred.suid),
        uid(cred.fsuid),
        gid(cred.gid),
        gid(cred.egid),
        gid(cred.sgid),
        gid(cred.fsgid),
        switches.nvcsw,
        switches.nivcsw,
    )
}

impl ProcFile {
    fn text(&self) -> String {
        match self.entry {
            ProcEntry::UidMap => self.ns.map_text(IdKind::Uid, &self.opener.user_ns),
            ProcEntry::GidMap => self.ns.map_text(IdKind::Gid, &self.opener.user_ns),
            ProcEntry::Setgroups => String::from(self.ns.setgroups_text()),
            ProcEntry::Generated | ProcEntry::FdDir | ProcEntry::Dir => String::new(),
            ProcEntry::Sysctl => crate::syscall::forkvm::sysctl(&self.sysctl, None)
                .map_or_else(|_| String::new(), |value| alloc::format!("{value}\n")),
        }
    }

    /// Whether it is a directory (`/proc/PID/fd`).
    pub fn is_dir(&self) -> bool {
        matches!(self.entry, ProcEntry::FdDir | ProcEntry::Dir)
    }

    /// The entries of a directory, besides `.` and `..`: for
    /// `/proc/PID/fd`, one link per open descriptor, named by its number.
    pub fn dir_entries(&self) -> alloc::vec::Vec<DirEntry> {
        if self.entry == ProcEntry::Dir {
            return self.listing.clone();
        }
        let Some(files) = &self.fd_table else {
            return alloc::vec::Vec::new();
        };
        let table = files.lock();
        table
            .open_fds()
            .map(|(fd, _)| {
                let name = alloc::format!("{fd}").into_bytes().into_boxed_slice();
                (name, FD_INO_BASE + fd, S_IFLNK)
            })
            .collect()
    }

    /// The position (`getdents64` counts entries with it).
    pub fn pos(&self) -> &Mutex<usize> {
        &self.pos
    }

    /// Reads from the file position.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, i32> {
        if !self.readable {
            return Err(EBADF);
        }
        let text = match self.entry {
            ProcEntry::Generated => self.generated.clone(),
            ProcEntry::FdDir | ProcEntry::Dir => return Err(crate::errno::EISDIR),
            _ => self.text().into_bytes(),
        };
        let mut pos = self.pos.lock();
        let tail = text.get(*pos..).unwrap_or(&[]);
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
            ProcEntry::Sysctl => {
                // Linux `proc_doulongvec_minmax` and friends: one number.
                let value = crate::syscall::forkvm::parse_sysctl_value(data)?;
                crate::syscall::forkvm::sysctl(&self.sysctl, Some(value))?;
            }
            ProcEntry::Generated | ProcEntry::FdDir | ProcEntry::Dir => return Err(EINVAL),
        }
        *pos = data.len();
        Ok(data.len())
    }
}
