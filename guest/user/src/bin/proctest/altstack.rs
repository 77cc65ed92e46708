//! The alternate signal stack: `sigaltstack`'s checks in Linux's order,
//! SA_ONSTACK handlers running on it (and the `uc_stack` their frame
//! carries), SS_AUTODISARM, a frame that would overflow it (SIGSEGV), and
//! its life across fork, vfork, `clone(CLONE_VM)` and `execve`.

use forkvm_user::signal::{
    sigaction, sigaltstack, sigaltstack_raw, SigInfo, StackT, SA_ONSTACK, SS_AUTODISARM,
    SS_DISABLE, SS_ONSTACK, UC_STACK,
};

use core::sync::atomic::AtomicBool;

use super::*;

use forkvm_abi::linux::clone::CLONE_VFORK;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("sigaltstack-checks", sigaltstack_checks),
    ("sigaltstack-handler-on-it", sigaltstack_handler_on_it),
    ("sigaltstack-autodisarm", sigaltstack_autodisarm),
    ("sigaltstack-overflow-segv", sigaltstack_overflow_segv),
    (
        "sigaltstack-fork-vfork-clone-vm",
        sigaltstack_fork_vfork_clone_vm,
    ),
    ("sigaltstack-exec-clears", sigaltstack_exec_clears),
];

/// The helper `sigaltstack-exec-clears` executes: exit 0 if the stack is
/// gone but SS_AUTODISARM kept, 1 otherwise.
pub const EXEC_ALTSTACK_CHECK: &CStr = c"exec-altstack-gone-flags-kept";

/// x86-64 `MINSIGSTKSZ`.
const MINSIGSTKSZ: usize = 2048;
const ALT_SIZE: usize = 64 * 1024;
use forkvm_user::signal::sig::SIGUSR1;
use forkvm_user::signal::sig::SIGUSR2;
use forkvm_user::signal::sig::SIGSEGV;

/// An alternate stack in a mapping of its own, installed for one scenario;
/// dropping it puts the previous one back before unmapping.
struct AltStack {
    map: Mapping,
    flags: u32,
    old: StackT,
}

impl AltStack {
    fn install(flags: u32) -> Result<AltStack, Msg> {
        let map = Mapping::new(ALT_SIZE)?;
        let wanted = StackT {
            sp: map.ptr as usize,
            flags,
            size: ALT_SIZE,
        };
        let old = sigaltstack(Some(&wanted)).ctx("sigaltstack")?;
        Ok(AltStack { map, flags, old })
    }

    fn sp(&self) -> usize {
        self.map.ptr as usize
    }

    /// The `stack_t` it was installed with.
    fn settings(&self) -> StackT {
        StackT {
            sp: self.sp(),
            flags: self.flags,
            size: ALT_SIZE,
        }
    }

    fn contains(&self, address: usize) -> bool {
        address > self.sp() && address - self.sp() <= ALT_SIZE
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let _ = sigaltstack(Some(&self.old));
    }
}

/// The stack as `sigaltstack` reports it now.
fn query() -> Result<StackT, Msg> {
    sigaltstack(None).ctx("sigaltstack(NULL, &old)")
}

/// Puts back `old` when dropped (for scenarios that change the stack
/// without an [`AltStack`]).
struct Restore(StackT);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = sigaltstack(Some(&self.0));
    }
}

/// Linux's checks, in its order: the new stack is read first (EFAULT,
/// nothing changed), then EINVAL for an unknown mode and ENOMEM below
/// MINSIGSTKSZ; the old stack is written last, so a bad `old_ss` gets
/// EFAULT with the change made. SS_ONSTACK is accepted as a mode and
/// means 0; SS_DISABLE forgets address and size.
fn sigaltstack_checks(_ctx: &Ctx) -> Outcome {
    let initial = query()?;
    ensure!(
        initial.flags & !SS_AUTODISARM == SS_DISABLE && initial.size == 0 && initial.sp == 0,
        "a new process has an alternate stack: {initial:?}"
    );
    let _restore = Restore(initial);
    let map = Mapping::new(ALT_SIZE)?;
    let sp = map.ptr as usize;
    let stack = |flags: u32, size: usize| StackT { sp, flags, size };

    ensure!(
        sigaltstack_raw(1, 0) == Err(Errno::EFAULT),
        "an unreadable stack_t is not EFAULT"
    );
    let got = sigaltstack(Some(&stack(4, ALT_SIZE)));
    ensure!(
        got == Err(Errno::EINVAL),
        "mode 4: {got:?}, expected EINVAL"
    );
    let got = sigaltstack(Some(&stack(0, MINSIGSTKSZ - 1)));
    ensure!(
        got == Err(Errno::ENOMEM),
        "{} bytes: {got:?}, expected ENOMEM",
        MINSIGSTKSZ - 1
    );
    ensure!(query()? == initial, "a refused call changed the stack");
    sigaltstack(Some(&stack(0, MINSIGSTKSZ))).ctx("MINSIGSTKSZ bytes")?;
    sigaltstack(Some(&stack(SS_ONSTACK, ALT_SIZE))).ctx("mode SS_ONSTACK")?;
    let now = query()?;
    ensure!(
        now == stack(0, ALT_SIZE),
        "after setting {:?}: {now:?} (SS_ONSTACK is reported only on the stack)",
        stack(SS_ONSTACK, ALT_SIZE)
    );
    ensure!(
        sigaltstack_raw(1, 0) == Err(Errno::EFAULT) && query()? == now,
        "an unreadable stack_t changed the stack"
    );

    let disable = StackT {
        sp: 0x1234,
        flags: SS_DISABLE,
        size: 77,
    };
    let got = sigaltstack_raw(&disable as *const StackT as usize, 1);
    ensure!(
        got == Err(Errno::EFAULT),
        "unwritable old_ss: {got:?}, expected EFAULT"
    );
    let now = query()?;
    ensure!(
        now == (StackT {
            sp: 0,
            flags: SS_DISABLE,
            size: 0
        }),
        "SS_DISABLE with an unwritable old_ss must still disable, and forget address and size: {now:?}"
    );
    Ok(())
}

/// What the last handler saw.
static HANDLER_LOCAL: AtomicUsize = AtomicUsize::new(0);
static HANDLER_QUERY: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];
static HANDLER_UC_STACK: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];
/// 0: the handler's attempt to re-set its stack succeeded; else the errno.
static HANDLER_SET: AtomicI32 = AtomicI32::new(-1);
/// Whether the handler tries to set the stack it found in `uc_stack`.
static HANDLER_TRIES_SET: AtomicBool = AtomicBool::new(false);

fn store(slots: &[AtomicUsize; 3], stack: StackT) {
    slots[0].store(stack.sp, Ordering::SeqCst);
    slots[1].store(stack.flags as usize, Ordering::SeqCst);
    slots[2].store(stack.size, Ordering::SeqCst);
}

fn load(slots: &[AtomicUsize; 3]) -> StackT {
    StackT {
        sp: slots[0].load(Ordering::SeqCst),
        flags: slots[1].load(Ordering::SeqCst) as u32,
        size: slots[2].load(Ordering::SeqCst),
    }
}

/// Records where it runs, what `sigaltstack` and `uc_stack` say, and
/// (if asked) whether it may set the stack again from there.
extern "C" fn record_stack(_signo: i32, _info: *mut SigInfo, uc: *mut u8) {
    let local = 0u8;
    HANDLER_LOCAL.store(
        core::hint::black_box(&local) as *const u8 as usize,
        Ordering::SeqCst,
    );
    // SAFETY: the kernel passes a valid ucontext; uc_stack is a stack_t.
    let uc_stack = unsafe { uc.add(UC_STACK).cast::<StackT>().read_unaligned() };
    store(&HANDLER_UC_STACK, uc_stack);
    if let Ok(now) = sigaltstack(None) {
        store(&HANDLER_QUERY, now);
    }
    if HANDLER_TRIES_SET.load(Ordering::SeqCst) {
        let again = StackT {
            flags: uc_stack.flags,
            ..uc_stack
        };
        let result = sigaltstack(Some(&again)).map_or_else(|e| e.0, |_| 0);
        HANDLER_SET.store(result, Ordering::SeqCst);
    }
}

fn reset_handler_record(tries_set: bool) {
    HANDLER_LOCAL.store(0, Ordering::SeqCst);
    store(&HANDLER_QUERY, StackT::default());
    store(&HANDLER_UC_STACK, StackT::default());
    HANDLER_SET.store(-1, Ordering::SeqCst);
    HANDLER_TRIES_SET.store(tries_set, Ordering::SeqCst);
}

/// An action for one scenario, put back when dropped.
struct Action(i32, forkvm_user::signal::SigAction);

impl Action {
    fn install(signal: i32, flags: u64) -> Result<Action, Msg> {
        let old = sigaction(signal, record_stack, flags, 0).ctx("rt_sigaction")?;
        Ok(Action(signal, old))
    }
}

impl Drop for Action {
    fn drop(&mut self) {
        let _ = forkvm_user::signal::sigaction_raw(self.0, Some(&self.1));
    }
}

fn raise(signal: i32) -> Outcome {
    kill(getpid() as i32, signal).ctx("kill(self)")
}

/// An SA_ONSTACK handler runs on the alternate stack, sees SS_ONSTACK, may
/// not change the stack (EPERM, even to the same values) and finds the
/// stack in `uc_stack`; a handler without SA_ONSTACK runs on the normal
/// stack, where setting the same stack again is allowed.
fn sigaltstack_handler_on_it(_ctx: &Ctx) -> Outcome {
    let alt = AltStack::install(0)?;
    let installed = alt.settings();
    {
        let _action = Action::install(SIGUSR1, SA_ONSTACK)?;
        reset_handler_record(true);
        raise(SIGUSR1)?;
        let local = HANDLER_LOCAL.load(Ordering::SeqCst);
        ensure!(
            alt.contains(local),
            "SA_ONSTACK handler ran at {local:#x}, not on the alternate stack {:#x}+{ALT_SIZE:#x}",
            alt.sp()
        );
        let seen = load(&HANDLER_QUERY);
        ensure!(
            seen == (StackT {
                flags: SS_ONSTACK,
                ..installed
            }),
            "sigaltstack in the handler: {seen:?}, expected SS_ONSTACK"
        );
        let set = HANDLER_SET.load(Ordering::SeqCst);
        ensure!(
            set == Errno::EPERM.0,
            "setting the stack while on it: errno {set}, expected EPERM"
        );
        let uc = load(&HANDLER_UC_STACK);
        ensure!(uc == installed, "uc_stack {uc:?}, expected {installed:?}");
    }
    {
        let _action = Action::install(SIGUSR2, 0)?;
        reset_handler_record(true);
        raise(SIGUSR2)?;
        let local = HANDLER_LOCAL.load(Ordering::SeqCst);
        ensure!(
            local != 0 && !alt.contains(local),
            "a handler without SA_ONSTACK ran at {local:#x}, on the alternate stack"
        );
        let seen = load(&HANDLER_QUERY);
        ensure!(seen == installed, "sigaltstack off the stack: {seen:?}");
        let set = HANDLER_SET.load(Ordering::SeqCst);
        ensure!(
            set == 0,
            "setting the same stack off it: errno {set}, expected success"
        );
    }
    let now = query()?;
    ensure!(now == installed, "after the handlers: {now:?}");
    Ok(())
}

/// SS_AUTODISARM: while the handler runs the task has no alternate stack
/// (SS_DISABLE, size 0); `uc_stack` keeps it, flags included, and
/// `rt_sigreturn` installs it again.
fn sigaltstack_autodisarm(_ctx: &Ctx) -> Outcome {
    let alt = AltStack::install(SS_AUTODISARM)?;
    let _action = Action::install(SIGUSR1, SA_ONSTACK)?;
    reset_handler_record(false);
    raise(SIGUSR1)?;
    let local = HANDLER_LOCAL.load(Ordering::SeqCst);
    ensure!(
        alt.contains(local),
        "SA_ONSTACK handler ran at {local:#x}, not on the alternate stack"
    );
    let seen = load(&HANDLER_QUERY);
    ensure!(
        seen == (StackT {
            sp: 0,
            flags: SS_DISABLE,
            size: 0
        }),
        "sigaltstack in an SS_AUTODISARM handler: {seen:?}, expected disarmed"
    );
    let armed = alt.settings();
    let uc = load(&HANDLER_UC_STACK);
    ensure!(uc == armed, "uc_stack {uc:?}, expected {armed:?}");
    let now = query()?;
    ensure!(
        now == armed,
        "after rt_sigreturn: {now:?}, expected {armed:?} again"
    );
    Ok(())
}

/// Where `descend_and_raise` stops: this far above the stack's bottom,
/// too little for any signal frame.
const SLACK: usize = 512;

/// Uses the stack down to [`SLACK`] bytes above `bottom`, then raises
/// SIGUSR2 (its frame cannot fit).
#[inline(never)]
fn descend_and_raise(bottom: usize) {
    let pad = [0u8; 256];
    let here = core::hint::black_box(&pad) as *const [u8; 256] as usize;
    if here > bottom + SLACK + 256 {
        descend_and_raise(bottom);
    } else {
        let _ = kill(getpid() as i32, SIGUSR2);
    }
    core::hint::black_box(&pad);
}

/// Where the alternate stack of the overflow child begins.
static OVERFLOW_BOTTOM: AtomicUsize = AtomicUsize::new(0);

extern "C" fn overflow_first(_signo: i32, _info: *mut SigInfo, _uc: *mut u8) {
    descend_and_raise(OVERFLOW_BOTTOM.load(Ordering::SeqCst));
}

extern "C" fn overflow_second(_signo: i32, _info: *mut SigInfo, _uc: *mut u8) {}

/// A signal taken while on the alternate stack whose frame would not fit
/// in it is not written below it: the task dies of SIGSEGV. The memory
/// below the stack is mapped, so only the kernel's check stops the frame;
/// the same signal with room to spare is delivered (the control child).
fn sigaltstack_overflow_segv(_ctx: &Ctx) -> Outcome {
    // The stack is the upper half: the lower half, mapped, lies below it.
    let map = Mapping::new(2 * ALT_SIZE)?;
    let bottom = map.ptr as usize + ALT_SIZE;
    OVERFLOW_BOTTOM.store(bottom, Ordering::SeqCst);
    let child = |deep: bool| {
        Child::spawn(move || {
            let stack = StackT {
                sp: bottom,
                flags: 0,
                size: ALT_SIZE,
            };
            let first: forkvm_user::signal::Handler = if deep {
                overflow_first
            } else {
                overflow_second
            };
            if sigaltstack(Some(&stack)).is_err()
                || sigaction(SIGUSR1, first, SA_ONSTACK, 0).is_err()
                || sigaction(SIGUSR2, overflow_second, SA_ONSTACK, 0).is_err()
            {
                return 2;
            }
            let _ = kill(getpid() as i32, SIGUSR1);
            0
        })
    };
    let control = child(false)?.wait_bounded("the control child")?;
    expect_exit("a shallow handler on the alternate stack", control, 0)?;
    let status = child(true)?.wait_bounded("the overflowing child")?;
    expect_signal(
        "a signal frame that overflows the alternate stack",
        status,
        SIGSEGV,
    )
}

/// What a `clone` child checks: (expected stack, result).
struct InheritCheck {
    expected: StackT,
    result: AtomicI32,
}

/// Stores 0 in the check if the child's stack is the expected one.
extern "C" fn check_inherited(arg: usize) -> ! {
    // SAFETY: the parent's check outlives this child (it is reaped first).
    let check = unsafe { &*(arg as *const InheritCheck) };
    let ok = sigaltstack(None).is_ok_and(|now| now == check.expected);
    check.result.store(if ok { 0 } else { 1 }, Ordering::SeqCst);
    exit(0)
}

/// fork and vfork children inherit the alternate stack; a child sharing
/// the address space without CLONE_VFORK starts without one (it must not
/// run handlers on its creator's stack).
fn sigaltstack_fork_vfork_clone_vm(_ctx: &Ctx) -> Outcome {
    let alt = AltStack::install(0)?;
    let installed = alt.settings();
    let forked = Child::spawn(move || i32::from(sigaltstack(None) != Ok(installed)))?;
    let status = forked.wait_bounded("the forked child")?;
    expect_exit("fork child sees the parent's alternate stack", status, 0)?;

    for (flags, expected, what) in [
        (
            CLONE_VM | CLONE_VFORK | SIGCHLD,
            installed,
            "a CLONE_VM|CLONE_VFORK child keeps the alternate stack",
        ),
        (
            CLONE_VM | SIGCHLD,
            StackT {
                sp: 0,
                flags: SS_DISABLE,
                size: 0,
            },
            "a CLONE_VM child starts without an alternate stack",
        ),
    ] {
        let stack = ThreadStack::new()?;
        let check = InheritCheck {
            expected,
            result: AtomicI32::new(-1),
        };
        // SAFETY: `check` and `stack` outlive the child, which is reaped
        // below (or by the guard's drop) before they go.
        let pid = unsafe {
            stack.clone(
                flags,
                check_inherited,
                &check as *const InheritCheck as usize,
            )
        }
        .ctx("clone")?;
        let status = Child { pid }.wait_bounded("the clone child")?;
        expect_exit(what, status, 0)?;
        let result = check.result.load(Ordering::SeqCst);
        ensure!(result == 0, "{what}: it did not (check {result})");
    }
    Ok(())
}

/// `execve` forgets the alternate stack (the memory is gone) but keeps
/// its flags, as Linux does: the new program sees SS_DISABLE with
/// SS_AUTODISARM still set.
fn sigaltstack_exec_clears(ctx: &Ctx) -> Outcome {
    let Some(argv0) = ctx.argv0 else {
        return Err(msg!("no argv[0] to execute"));
    };
    let _alt = AltStack::install(SS_AUTODISARM)?;
    let child = Child::spawn(|| exec_self_helper(argv0, EXEC_ALTSTACK_CHECK))?;
    let status = child.wait_bounded("the exec'd child")?;
    expect_exit(
        "after execve: no alternate stack, SS_AUTODISARM kept",
        status,
        0,
    )
}

/// The [`EXEC_ALTSTACK_CHECK`] helper's exit status.
pub fn exec_altstack_check() -> i32 {
    let expected = StackT {
        sp: 0,
        flags: SS_DISABLE | SS_AUTODISARM,
        size: 0,
    };
    i32::from(sigaltstack(None) != Ok(expected))
}
