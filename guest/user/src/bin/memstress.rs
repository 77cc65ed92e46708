//! `memstress MODE ARG`: exhausts one kind of kernel memory the way a
//! hostile or buggy program would, and reports how the kernel refused.
//! The VM tests (tests/memory_exhaustion.rs) check the kernel survives and
//! gives everything back.
//!
//! - `touch MIB`: maps and writes MIB MiB; prints `touched MIB MiB`
//!   (a death by the OOM killer shows as the shell's `killed by signal 9`).
//! - `hold MIB`: a child writes MIB MiB, then sleeps for ever (reparented
//!   to pid 1 when this process exits, once the memory is in place).
//! - `thread MIB`: writes MIB MiB, the last 32 MiB of them from a second
//!   thread while the first sleeps: the OOM killer must take the whole
//!   process.
//! - `populate MIB` / `shared MIB`: one `mmap(MAP_POPULATE)` / shared
//!   mapping of MIB MiB; prints its result and whether the process's
//!   virtual size is what it was before (a failed mmap leaves nothing).
//! - `areas`: one-page mappings of alternating rights until mmap fails;
//!   prints how many and the error, then unmaps them.
//! - `semsets NSEMS`: creates sets of NSEMS semaphores until semget
//!   fails; prints how many and the error, then removes them.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use forkvm_user::errno::Errno;
use forkvm_user::io::Bytes;
use forkvm_user::syscall::{
    self, Timespec, MAP_ANONYMOUS, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE,
};
use forkvm_user::{entry, eprintln, forkvm, println, sem};

entry!(main);

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;

fn main(args: &[&[u8]], _env: &[&[u8]]) -> i32 {
    let number =
        |i: usize| -> Option<usize> { core::str::from_utf8(args.get(i)?).ok()?.parse().ok() };
    let mode = args.get(1).copied().unwrap_or_default();
    let result = match (mode, number(2)) {
        (b"touch", Some(mib)) => touch(mib).map(|()| println!("touched {mib} MiB")),
        (b"hold", Some(mib)) => hold(mib),
        (b"thread", Some(mib)) => thread(mib),
        (b"populate", Some(mib)) => map_once(mib, MAP_PRIVATE | MAP_POPULATE),
        (b"shared", Some(mib)) => map_once(mib, MAP_SHARED),
        (b"areas", _) => areas(),
        (b"semsets", Some(nsems)) => semsets(nsems),
        _ => {
            eprintln!(
                "usage: memstress touch|hold|thread|populate|shared MIB | areas | semsets NSEMS"
            );
            return 2;
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("memstress {}: {e}", Bytes(mode));
            1
        }
    }
}

/// Maps `mib` MiB, in mappings of at most 32 MiB (so that more than RAM
/// passes the kernel's overcommit check), and writes one byte per page.
fn touch(mib: usize) -> Result<(), Errno> {
    const CHUNK_MIB: usize = 32;
    let mut left = mib;
    while left > 0 {
        let len = left.min(CHUNK_MIB) * MIB;
        let memory = syscall::mmap_anonymous(len, PROT_READ | PROT_WRITE)?;
        for offset in (0..len).step_by(PAGE) {
            // SAFETY: inside the fresh private mapping of `len` bytes.
            unsafe { memory.add(offset).write_volatile(1) };
        }
        left -= len / MIB;
    }
    Ok(())
}

fn sleep_for_ever() -> ! {
    loop {
        let _ = syscall::nanosleep(Timespec::from_nanos(1_000_000_000_000));
    }
}

fn hold(mib: usize) -> Result<(), Errno> {
    let [reader, writer] = syscall::pipe2(0)?;
    if syscall::fork()? == 0 {
        let _ = syscall::close(reader);
        if touch(mib).is_err() {
            syscall::exit_group(1);
        }
        let _ = syscall::write(writer, b"x");
        let _ = syscall::close(writer);
        sleep_for_ever();
    }
    let _ = syscall::close(writer);
    let mut byte = [0u8];
    if syscall::read(reader, &mut byte)? != 1 {
        return Err(Errno::ENOMEM);
    }
    println!("holding {mib} MiB");
    Ok(())
}

static TOUCH_MIB: AtomicU32 = AtomicU32::new(0);

extern "C" fn toucher(_: usize) -> ! {
    let mib = TOUCH_MIB.load(Ordering::Relaxed) as usize;
    let _ = touch(mib);
    println!("thread touched {mib} MiB");
    syscall::exit(0)
}

/// Touches all but the last 32 of `mib` MiB in the first thread, then
/// the rest in a second one (faults of a second thread are slow on this
/// kernel; the first does the bulk).
fn thread(mib: usize) -> Result<(), Errno> {
    const THREAD_MIB: usize = 32;
    touch(mib.saturating_sub(THREAD_MIB))?;
    let mib = mib.min(THREAD_MIB);
    const CLONE_VM: u64 = 0x100;
    const CLONE_FS: u64 = 0x200;
    const CLONE_FILES: u64 = 0x400;
    const CLONE_SIGHAND: u64 = 0x800;
    const CLONE_THREAD: u64 = 0x10000;
    const STACK: usize = 64 << 10;
    TOUCH_MIB.store(mib as u32, Ordering::Relaxed);
    let stack = syscall::mmap_anonymous(STACK, PROT_READ | PROT_WRITE)?;
    let flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
    // SAFETY: a fresh stack only the thread uses; no tid pointers or TLS.
    unsafe {
        forkvm_user::clone::clone_raw(
            flags,
            stack.add(STACK),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            0,
            toucher,
            0,
        )?;
    }
    sleep_for_ever()
}

/// This process's virtual size in KiB, as `ps` shows it.
fn vsz_kb() -> u64 {
    let mut tasks = alloc::vec![forkvm::TaskInfo::default(); 512];
    let n = forkvm::tasks(&mut tasks).unwrap_or(0);
    let pid = syscall::getpid();
    tasks[..n]
        .iter()
        .find(|t| t.pid as i32 == pid as i32)
        .map_or(0, |t| t.vsz_kb)
}

fn map_once(mib: usize, flags: u32) -> Result<(), Errno> {
    let before = vsz_kb();
    // SAFETY: no MAP_FIXED: the kernel picks unused addresses.
    let result = unsafe {
        syscall::mmap(
            0,
            mib * MIB,
            PROT_READ | PROT_WRITE,
            flags | MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    let grown = vsz_kb() as i64 - before as i64;
    match result {
        Ok(_) => println!("mmap {mib} MiB: ok, vsz +{grown} kB"),
        Err(e) if grown == 0 => println!("mmap {mib} MiB: {e}, vsz unchanged"),
        Err(e) => println!("mmap {mib} MiB: {e}, vsz +{grown} kB LEAKED"),
    }
    Ok(())
}

fn areas() -> Result<(), Errno> {
    let mut mapped: Vec<*mut u8> = Vec::new();
    let error = loop {
        // Alternate the rights so that neighbours never merge.
        let prot = if mapped.len().is_multiple_of(2) {
            PROT_READ
        } else {
            PROT_READ | PROT_WRITE
        };
        match syscall::mmap_anonymous(PAGE, prot) {
            Ok(page) => mapped.push(page),
            Err(e) => break e,
        }
        if mapped.len() > 1 << 20 {
            break Errno(0);
        }
    };
    println!("areas: {} mapped, then {error}", mapped.len());
    for page in mapped {
        // SAFETY: a page this function mapped and nothing else uses.
        unsafe { syscall::munmap(page, PAGE)? };
    }
    Ok(())
}

fn semsets(nsems: usize) -> Result<(), Errno> {
    const IPC_RMID: i32 = 0;
    let mut ids = Vec::new();
    let error = loop {
        match sem::semget(sem::IPC_PRIVATE, nsems as i32, sem::IPC_CREAT | 0o600) {
            Ok(id) => ids.push(id),
            Err(e) => break e,
        }
    };
    println!("semsets: {} sets of {nsems}, then {error}", ids.len());
    for id in ids {
        sem::semctl(id, 0, IPC_RMID, 0)?;
    }
    Ok(())
}
