//! `clone` sharing memory: a `CLONE_VM` child and threads (shared memory,
//! ids, TLS and `CLONE_CHILD_CLEARTID`).

use super::vfork::{vfork_exec_child, EXEC_ERRNO};
use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("clone-vm-shares", clone_vm_shares),
    ("thread-shares-mm", thread_shares_mm),
    ("thread-getpid", thread_getpid),
    ("thread-tls", thread_tls),
    ("arch-prctl-gs-base", arch_prctl_gs_base),
    ("child-cleartid-wakes", child_cleartid_wakes),
];

const CLONE_VM_MAGIC: u64 = 0xc10e_5eed_0000_0001;

/// The `clone-vm-shares` child: stores the magic in the parent's word.
extern "C" fn clone_vm_child(arg: usize) -> ! {
    // SAFETY: the parent passes its word and reaps us before it goes away.
    let word: &AtomicU64 = unsafe { shared(arg) };
    word.store(CLONE_VM_MAGIC, Ordering::Release);
    exit(0)
}

/// A `clone(CLONE_VM | SIGCHLD)` child writes a word of the parent's stack;
/// the parent sees it after `wait4`.
fn clone_vm_shares(_: &Ctx) -> Outcome {
    let stack = ThreadStack::new()?;
    let word = AtomicU64::new(0);
    // SAFETY: `word` and `stack` outlive the child: it is reaped (by `wait`,
    // or by the guard's drop, which comes first) before they are dropped.
    let pid = unsafe {
        stack.clone(
            CLONE_VM | SIGCHLD,
            clone_vm_child,
            &word as *const AtomicU64 as usize,
        )
    }
    .ctx("clone(CLONE_VM|SIGCHLD)")?;
    let status = Child { pid }.wait()?;
    expect_exit("child", status, 0)?;
    let got = word.load(Ordering::Acquire);
    ensure!(
        got == CLONE_VM_MAGIC,
        "expected the child's {CLONE_VM_MAGIC:#x} in the shared word, got {got:#x}"
    );
    Ok(())
}

const THREAD_MAGIC: u64 = 0x7407_ead5_0000_0002;
const THREAD_PAGE_BYTE: u8 = 0x5a;

/// The `thread-shares-mm` thread: writes a word, maps a page, fills it and
/// publishes its address.
extern "C" fn thread_maps_page(arg: usize) -> ! {
    // SAFETY: the creator joins us before its report goes away.
    let report: &ThreadReport = unsafe { shared(arg) };
    report.word.store(THREAD_MAGIC, Ordering::Relaxed);
    if let Ok(p) = mmap_anonymous(PAGE, PROT_READ | PROT_WRITE) {
        for i in 0..PAGE {
            // SAFETY: i < PAGE inside the fresh mapping, handed to the creator.
            unsafe { p.add(i).write_volatile(THREAD_PAGE_BYTE) };
        }
        report.page.store(p as usize, Ordering::Release);
    }
    exit(0)
}

/// A thread (`lat_proc thread`'s flags) writes memory and maps a page; after
/// the join, the creator reads the page at the address the thread published.
fn thread_shares_mm(_: &Ctx) -> Outcome {
    let stack = ThreadStack::new()?;
    let report = ThreadReport::default();
    // SAFETY: `report` and `stack` outlive the thread, which is joined below
    // (a thread that cannot be joined keeps its stack, see `join`).
    unsafe {
        stack.clone(
            THREAD_FLAGS,
            thread_maps_page,
            &report as *const ThreadReport as usize,
        )
    }
    .ctx("clone(thread)")?;
    stack.join()?;
    let word = report.word.load(Ordering::Relaxed);
    ensure!(
        word == THREAD_MAGIC,
        "expected the thread's {THREAD_MAGIC:#x} in the shared word, got {word:#x}"
    );
    let addr = report.page.load(Ordering::Acquire);
    ensure!(addr != 0, "the thread's mmap failed");
    let page = Mapping {
        ptr: addr as *mut u8,
        len: PAGE,
    };
    for i in 0..PAGE {
        let byte = page.get(i);
        ensure!(
            byte == THREAD_PAGE_BYTE,
            "thread's page at {addr:#x}+{i}: expected {THREAD_PAGE_BYTE:#x}, got {byte:#x}"
        );
    }
    page.unmap()?;
    Ok(())
}

/// The `thread-getpid` thread: reports its pid, tid and ppid.
extern "C" fn thread_reports_ids(arg: usize) -> ! {
    // SAFETY: the creator joins us before its report goes away.
    let report: &ThreadReport = unsafe { shared(arg) };
    report.pid.store(getpid(), Ordering::Relaxed);
    report.tid.store(gettid(), Ordering::Relaxed);
    report.ppid.store(getppid(), Ordering::Relaxed);
    exit(0)
}

/// A thread's `getpid()` is its creator's, its `gettid()` differs and is
/// what `clone` returned (and wrote to the `CLONE_PARENT_SETTID` word); its
/// `getppid()` is the process's parent.
fn thread_getpid(_: &Ctx) -> Outcome {
    let stack = ThreadStack::new()?;
    let report = ThreadReport::default();
    // SAFETY: as in thread_shares_mm.
    let tid = unsafe {
        stack.clone(
            THREAD_FLAGS,
            thread_reports_ids,
            &report as *const ThreadReport as usize,
        )
    }
    .ctx("clone(thread)")?;
    let ptid = stack.ptid().load(Ordering::Relaxed);
    stack.join()?;
    let (pid, my_tid, ppid) = (getpid(), gettid(), getppid());
    let t_pid = report.pid.load(Ordering::Relaxed);
    let t_tid = report.tid.load(Ordering::Relaxed);
    let t_ppid = report.ppid.load(Ordering::Relaxed);
    ensure!(
        t_pid == pid,
        "thread's getpid() {t_pid}, expected the process's {pid}"
    );
    ensure!(
        t_tid != my_tid,
        "thread's gettid() {t_tid} equals the creator's"
    );
    ensure!(
        t_tid == tid,
        "thread's gettid() {t_tid}, but clone returned {tid}"
    );
    ensure!(
        ptid == tid,
        "CLONE_PARENT_SETTID word {ptid}, but clone returned {tid}"
    );
    ensure!(
        t_ppid == ppid,
        "thread's getppid() {t_ppid}, expected the process's parent {ppid}"
    );
    Ok(())
}

const ARCH_SET_FS: usize = 0x1002;
const ARCH_GET_FS: usize = 0x1003;

/// `arch_prctl(ARCH_GET_FS)`: the caller's FS base.
fn fs_base() -> Result<u64, Errno> {
    let mut base = 0u64;
    // SAFETY: the kernel writes one u64 to `base`.
    let ret = unsafe { syscall2(nr::ARCH_PRCTL, ARCH_GET_FS, &mut base as *mut u64 as usize) };
    forkvm_user::syscall::check(ret).map(|_| base)
}

/// `arch_prctl(ARCH_SET_FS, base)`.
fn set_fs_base(base: u64) -> Result<(), Errno> {
    // SAFETY: only fs-relative accesses, which this program makes only
    // through `fs_word`, depend on it.
    let ret = unsafe { syscall2(nr::ARCH_PRCTL, ARCH_SET_FS, base as usize) };
    forkvm_user::syscall::check(ret).map(|_| ())
}

/// The word at FS:0. Every TLS block here starts with its own address
/// (like glibc's TCB self pointer), so it names the block FS points at.
fn fs_word() -> u64 {
    let word: u64;
    // SAFETY: callers have pointed FS at a live block of at least 8 bytes.
    unsafe { asm!("mov {}, qword ptr fs:[0]", out(reg) word, options(nostack, readonly)) };
    word
}

/// Yields this many times per thread in `thread-tls`.
const TLS_ROUNDS: u32 = 200;

/// What a `thread-tls` thread checks and reports.
#[derive(Default)]
struct TlsReport {
    /// Its TLS block (the `CLONE_SETTLS` value).
    block: AtomicU64,
    /// A second block it moves its FS base to halfway (0: none).
    moved_to: AtomicU64,
    /// Moves with the `wrfsbase` instruction rather than `arch_prctl`.
    with_wrfsbase: AtomicU32,
    /// Set at the first wrong FS base or FS:0 word, with both values.
    failed: AtomicU32,
    seen_base: AtomicU64,
    seen_word: AtomicU64,
    done: AtomicU32,
}

/// A `thread-tls` thread: checks its FS base and the word at FS:0
/// between yields (the other threads run in between), optionally moving
/// its base with `arch_prctl` halfway.
extern "C" fn thread_checks_tls(arg: usize) -> ! {
    // SAFETY: the creator joins us before its report goes away.
    let report: &TlsReport = unsafe { shared(arg) };
    let mut expected = report.block.load(Ordering::Relaxed);
    for round in 0..TLS_ROUNDS {
        let moved_to = report.moved_to.load(Ordering::Relaxed);
        if round == TLS_ROUNDS / 2 && moved_to != 0 {
            if report.with_wrfsbase.load(Ordering::Relaxed) != 0 {
                // SAFETY: the kernel offers the instruction (AT_HWCAP2);
                // FS:0 at `moved_to` is the block's own address.
                unsafe { asm!("wrfsbase {}", in(reg) moved_to, options(nostack)) };
            } else if set_fs_base(moved_to).is_err() {
                report.failed.store(1, Ordering::Relaxed);
                break;
            }
            expected = moved_to;
        }
        let (base, word) = (fs_base().unwrap_or(0), fs_word());
        if base != expected || word != expected {
            report.seen_base.store(base, Ordering::Relaxed);
            report.seen_word.store(word, Ordering::Relaxed);
            report.failed.store(1, Ordering::Relaxed);
            break;
        }
        forkvm_user::syscall::sched_yield();
    }
    report.done.store(1, Ordering::Release);
    exit(0)
}

/// AT_HWCAP2's HWCAP2_FSGSBASE: user code may use `wrfsbase` (Linux 5.9+
/// on a CPU with FSGSBASE; the guest kernel likewise).
fn user_fsgsbase() -> bool {
    const AT_HWCAP2: u64 = 26;
    const HWCAP2_FSGSBASE: u64 = 1 << 1;
    forkvm_user::start::getauxval(AT_HWCAP2).is_some_and(|caps| caps & HWCAP2_FSGSBASE != 0)
}

/// Each thread keeps its own FS base (`CLONE_SETTLS`, `arch_prctl`, or
/// `wrfsbase` where the kernel offers it) across context switches between
/// threads of one address space, the creator's is untouched by theirs,
/// and a forked child inherits the creator's.
fn thread_tls(_: &Ctx) -> Outcome {
    let old = fs_base().ctx("arch_prctl(ARCH_GET_FS)")?;
    // The creator's own block: a word holding its own address.
    let own = AtomicU64::new(0);
    let own_addr = &own as *const AtomicU64 as u64;
    own.store(own_addr, Ordering::Relaxed);
    set_fs_base(own_addr).ctx("arch_prctl(ARCH_SET_FS)")?;
    let result = thread_tls_with_own_block(own_addr);
    // Put the program's FS base back before judging (nothing else here
    // uses FS).
    set_fs_base(old).ctx("arch_prctl(ARCH_SET_FS) back")?;
    result
}

fn thread_tls_with_own_block(own: u64) -> Outcome {
    // A keeps its block; B moves to a second one with arch_prctl, C with
    // wrfsbase (if offered, else with arch_prctl too).
    let stacks = [
        ThreadStack::new()?,
        ThreadStack::new()?,
        ThreadStack::new()?,
    ];
    let reports = [
        TlsReport::default(),
        TlsReport::default(),
        TlsReport::default(),
    ];
    for (stack, report) in stacks.iter().zip(&reports) {
        report.block.store(stack.map.ptr as u64, Ordering::Relaxed);
    }
    for (stack, report) in stacks.iter().zip(&reports).skip(1) {
        // The second block inside the thread's area, its own address first.
        let second = stack.map.ptr as u64 + 128;
        // SAFETY: 8 aligned bytes inside the mapping, clear of the TLS word
        // and the tid words (at 64 and 68), written before the thread exists.
        unsafe { (second as *mut u64).write(second) };
        report.moved_to.store(second, Ordering::Relaxed);
    }
    reports[2]
        .with_wrfsbase
        .store(u32::from(user_fsgsbase()), Ordering::Relaxed);
    for (stack, report) in stacks.iter().zip(&reports) {
        // SAFETY: `report` and `stack` outlive the thread, which is joined
        // below (a thread that cannot be joined keeps its stack).
        unsafe {
            stack.clone(
                THREAD_FLAGS,
                thread_checks_tls,
                report as *const TlsReport as usize,
            )
        }
        .ctx("clone(thread)")?;
    }
    // Meanwhile the creator checks its own, yielding to them.
    let deadline = monotonic_ns() + TIMEOUT_NS;
    let mut creator_bad = None;
    while reports.iter().any(|r| r.done.load(Ordering::Acquire) == 0) && monotonic_ns() < deadline {
        let (base, word) = (fs_base().unwrap_or(0), fs_word());
        if creator_bad.is_none() && (base != own || word != own) {
            creator_bad = Some((base, word));
        }
        forkvm_user::syscall::sched_yield();
    }
    // Join them all before judging (an early return would unmap the stack
    // of a thread still running).
    let mut joined = Ok(());
    for stack in stacks {
        let result = stack.join();
        joined = joined.and(result);
    }
    joined?;
    if let Some((base, word)) = creator_bad {
        return Err(msg!(
            "creator's FS base {base:#x} / FS:0 {word:#x} while its threads ran, expected {own:#x}"
        ));
    }
    let names = ["A", "B (arch_prctl)", "C (wrfsbase)"];
    for (name, report) in names.into_iter().zip(&reports) {
        ensure!(
            report.failed.load(Ordering::Relaxed) == 0,
            "thread {name} saw FS base {:#x} / FS:0 {:#x}, expected {:#x} (then {:#x})",
            report.seen_base.load(Ordering::Relaxed),
            report.seen_word.load(Ordering::Relaxed),
            report.block.load(Ordering::Relaxed),
            report.moved_to.load(Ordering::Relaxed)
        );
    }
    // fork: the child starts with the creator's FS base.
    let child = Child::spawn(move || i32::from(fs_base() != Ok(own) || fs_word() != own))?;
    expect_exit(
        "a forked child checking its inherited FS base",
        child.wait_bounded("fork child")?,
        0,
    )
}

/// The `child-cleartid-wakes` thread: sleeps 20 ms (so the creator is
/// asleep in `FUTEX_WAIT` by then), then exits.
extern "C" fn thread_sleeps(_arg: usize) -> ! {
    sleep_ns(20 * MS);
    exit(0)
}

/// When a `CLONE_CHILD_CLEARTID` thread exits, the kernel stores 0 in the
/// word and wakes a `FUTEX_WAIT`er on it.
fn child_cleartid_wakes(_: &Ctx) -> Outcome {
    let stack = ThreadStack::new()?;
    // SAFETY: the thread uses only its stack, which is kept until joined.
    unsafe { stack.clone(THREAD_FLAGS, thread_sleeps, 0) }.ctx("clone(thread)")?;
    let timeout = Timespec::from_nanos(TIMEOUT_NS);
    let start = monotonic_ns();
    let woken = futex(stack.ctid(), FUTEX_WAIT, u32::MAX, Some(&timeout));
    let waited_ms = (monotonic_ns() - start) / MS;
    let word = stack.ctid().load(Ordering::Acquire);
    // A wait for the old value of a cleared word returns at once.
    let again = futex(stack.ctid(), FUTEX_WAIT, u32::MAX, Some(&timeout));
    // Joined (or left running with its stack) before any verdict.
    let joined = stack.join();
    match woken {
        // EAGAIN: the word was already cleared when we got to wait.
        Ok(_) | Err(Errno::EAGAIN) => {}
        Err(Errno::ETIMEDOUT) => {
            return Err(msg!(
                "FUTEX_WAIT on the CHILD_CLEARTID word timed out after {waited_ms} ms (word {word:#x}): no wake at thread exit"
            ))
        }
        Err(e) => return Err(msg!("FUTEX_WAIT on the CHILD_CLEARTID word: {e}")),
    }
    ensure!(
        word == 0,
        "CHILD_CLEARTID word {word:#x} when FUTEX_WAIT returned (after {waited_ms} ms), expected 0"
    );
    ensure!(
        again == Err(Errno::EAGAIN),
        "FUTEX_WAIT on the cleared word, expecting {:#x}: expected EAGAIN, got {again:?}",
        u32::MAX
    );
    joined
}

const ARCH_SET_GS: usize = 0x1001;
const ARCH_GET_GS: usize = 0x1004;

/// `arch_prctl(ARCH_GET_GS)`: the caller's GS base.
pub fn gs_base() -> Result<u64, Errno> {
    let mut base = 0u64;
    // SAFETY: the kernel writes one u64 to `base`.
    let ret = unsafe { syscall2(nr::ARCH_PRCTL, ARCH_GET_GS, &mut base as *mut u64 as usize) };
    forkvm_user::syscall::check(ret).map(|_| base)
}

/// `arch_prctl(ARCH_SET_GS, base)`.
fn set_gs_base(base: u64) -> Result<(), Errno> {
    // SAFETY: this program makes no gs-relative accesses.
    let ret = unsafe { syscall2(nr::ARCH_PRCTL, ARCH_SET_GS, base as usize) };
    forkvm_user::syscall::check(ret).map(|_| ())
}

/// The helper that `arch-prctl-gs-base` executes: exit 0 if the new
/// program starts with GS base 0, else 1.
pub const EXEC_GS_CHECK: &[u8] = b"exec-gs-check";

/// The GS base set with `arch_prctl` is the one user mode uses, and it
/// belongs to the task: a forked child starts with its
/// parent's and moves its own without moving the parent's (the two run
/// in turn in between), and execve starts the new program at 0.
fn arch_prctl_gs_base(ctx: &Ctx) -> Outcome {
    // User mode sees the base it set: GS:0 reads this word.
    static MARKER: AtomicU64 = AtomicU64::new(0x6773_6261_7365);
    set_gs_base(MARKER.as_ptr() as u64).ctx("arch_prctl(ARCH_SET_GS, &MARKER)")?;
    let word: u64;
    // SAFETY: GS points at MARKER, a live static of 8 bytes.
    unsafe { asm!("mov {}, qword ptr gs:[0]", out(reg) word, options(nostack, readonly)) };
    ensure!(
        word == MARKER.load(Ordering::Relaxed),
        "GS:0 reads {word:#x}, not the word at the base just set"
    );
    const BASE: u64 = 0x1234_5000;
    set_gs_base(BASE).ctx("arch_prctl(ARCH_SET_GS)")?;
    let got = gs_base().ctx("arch_prctl(ARCH_GET_GS)")?;
    ensure!(got == BASE, "GS base {got:#x} after setting {BASE:#x}");
    let child = Child::spawn(|| {
        let inherited = gs_base() == Ok(BASE);
        let moved = set_gs_base(BASE + 0x1000).is_ok();
        for _ in 0..10 {
            forkvm_user::syscall::sched_yield();
        }
        let kept = gs_base() == Ok(BASE + 0x1000);
        i32::from(!inherited) | i32::from(!moved) << 1 | i32::from(!kept) << 2
    })?;
    for _ in 0..10 {
        forkvm_user::syscall::sched_yield();
    }
    let status = child.wait()?;
    expect_exit(
        "child (1: base not inherited, 2: not set, 4: not kept)",
        status,
        0,
    )?;
    let got = gs_base().ctx("arch_prctl(ARCH_GET_GS)")?;
    ensure!(
        got == BASE,
        "parent's GS base {got:#x} after the child moved its own"
    );

    let Some(argv0) = ctx.argv0 else {
        return Err(msg!("no argv[0] to execute"));
    };
    // SAFETY: argv[0] is a slice of the NUL-terminated string the kernel put
    // on the initial stack (see forkvm_user::start); its NUL follows it.
    let path = unsafe { CStr::from_ptr(argv0.as_ptr().cast()) };
    let argv = [
        argv0.as_ptr(),
        c"exec-gs-check".as_ptr().cast(),
        core::ptr::null(),
    ];
    let envp = [core::ptr::null()];
    EXEC_ERRNO.store(0, Ordering::Relaxed);
    let pid = vfork_exec_child(path, &argv, &envp).ctx("vfork")?;
    let status = Child { pid }.wait()?;
    set_gs_base(0).ctx("arch_prctl(ARCH_SET_GS, 0)")?;
    let errno = EXEC_ERRNO.load(Ordering::Relaxed);
    ensure!(errno == 0, "child's execve failed: {}", Errno(errno));
    expect_exit(
        "exec'd `proctest exec-gs-check` (1: GS base kept)",
        status,
        0,
    )
}
