//! Returns to user mode with register values a program chose: a clone
//! child on a non-canonical stack, `rt_sigreturn` to a non-canonical or
//! kernel-side stack pointer, a jump into the kernel's half with the
//! stack pointer there too, and the alignment-check flag set across traps. Linux
//! returns to such a task as asked (x86 `IRET` loads any RSP; only the
//! task's own stack accesses then fault), and the kernel lives on.

use forkvm_user::signal::{sig, sigaction, SigInfo, UC_MCONTEXT};

use core::arch::global_asm;

use super::*;

pub const SCENARIOS: &[(&str, Scenario)] = &[
    (
        "clone-noncanonical-stack-runs",
        clone_noncanonical_stack_runs,
    ),
    (
        "vfork-noncanonical-stack-runs",
        vfork_noncanonical_stack_runs,
    ),
    (
        "clone-noncanonical-stack-push-segv",
        clone_noncanonical_stack_push_segv,
    ),
    (
        "clone-noncanonical-stack-read-sigbus",
        clone_noncanonical_stack_read_sigbus,
    ),
    (
        "sigreturn-noncanonical-rsp-runs",
        sigreturn_noncanonical_rsp_runs,
    ),
    (
        "sigreturn-kernel-side-rsp-runs",
        sigreturn_kernel_side_rsp_runs,
    ),
    (
        "jump-to-kernel-address-with-kernel-stack-segv",
        jump_kernel_address_kernel_stack_segv,
    ),
    (
        "alignment-check-flag-survives-traps",
        alignment_check_flag_survives_traps,
    ),
    (
        "nested-task-flag-survives-traps",
        nested_task_flag_survives_traps,
    ),
];

/// The first non-canonical address above user space (4-level paging).
const NONCANONICAL_STACK: usize = 0x0000_8000_0000_0000;
/// The value Linux's `sigreturn` selftest round-trips through RSP.
const NONCANONICAL_RSP: usize = 0x8bad_f00d_5aad_c0de;
/// forkvm's kernel side (PAGE_OFFSET + 2^45, unmapped); an unmapped user
/// address on the host's Linux.
const KERNEL_SIDE: usize = 0x0000_6000_0000_0000;

/// What the child does after `clone` returns 0 in it, on the given stack.
#[derive(Clone, Copy)]
enum ChildAction {
    /// Exits 42 if its rsp is the stack it was given (43 if not), without
    /// touching the stack.
    CheckRsp = 0,
    /// Pushes a word: a write just below the stack pointer.
    Push = 1,
    /// Reads the word at the stack pointer.
    Read = 2,
}

/// `clone(flags | SIGCHLD, stack)` whose child runs `action` in assembly
/// (it has no usable stack, and touches no memory but that stack) and
/// then `exit_group`.
fn clone_on_stack(flags: u64, stack: usize, action: ChildAction) -> Result<Child, Msg> {
    let ret: isize;
    // SAFETY: the parent continues as after any system call; the child
    // never leaves the asm block (it ends in exit_group) and writes no
    // memory but at its own stack pointer, so even with CLONE_VM (vfork)
    // nothing of the parent changes.
    unsafe {
        asm!(
            "syscall",
            "test rax, rax",
            "jnz 3f",
            // The child: rsi still holds the stack it was given.
            "cmp r9, 1",
            "je 5f",
            "cmp r9, 2",
            "je 6f",
            "mov edi, 43",
            "cmp rsp, rsi",
            "jne 4f",
            "mov edi, 42",
            "4:",
            "mov eax, 231",
            "syscall",
            "ud2",
            "5:",
            "push rax",
            "mov edi, 44",
            "jmp 4b",
            "6:",
            "mov rax, [rsp]",
            "mov edi, 45",
            "jmp 4b",
            "3:",
            inlateout("rax") nr::CLONE as isize => ret,
            in("rdi") (flags | SIGCHLD) as usize,
            in("rsi") stack,
            in("rdx") 0usize,
            in("r10") 0usize,
            in("r8") 0usize,
            in("r9") action as usize,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    match forkvm_user::syscall::check(ret) {
        Ok(pid) => Ok(Child { pid: pid as Pid }),
        Err(e) => Err(msg!("clone({flags:#x} | SIGCHLD, stack {stack:#x}): {e}")),
    }
}

/// The child of a clone with a non-canonical stack runs: its first
/// instructions see that stack pointer and exit without touching it.
fn clone_noncanonical_stack_runs(_: &Ctx) -> Outcome {
    let child = clone_on_stack(0, NONCANONICAL_STACK, ChildAction::CheckRsp)?;
    let status = child.wait_bounded("child on a non-canonical stack")?;
    expect_exit("child on a non-canonical stack", status, 42)
}

/// The same for a vfork child (`CLONE_VM | CLONE_VFORK` with a stack).
fn vfork_noncanonical_stack_runs(_: &Ctx) -> Outcome {
    use forkvm_abi::linux::clone::CLONE_VFORK;
    let child = clone_on_stack(
        CLONE_VM | CLONE_VFORK,
        NONCANONICAL_STACK,
        ChildAction::CheckRsp,
    )?;
    let status = child.wait_bounded("vfork child on a non-canonical stack")?;
    expect_exit("vfork child on a non-canonical stack", status, 42)
}

/// Its first push writes just below 2^47, a canonical but unmapped
/// address: SIGSEGV.
fn clone_noncanonical_stack_push_segv(_: &Ctx) -> Outcome {
    let child = clone_on_stack(0, NONCANONICAL_STACK, ChildAction::Push)?;
    let status = child.wait_bounded("push on a non-canonical stack")?;
    expect_signal("push on a non-canonical stack", status, SIGSEGV)
}

/// A read at the non-canonical stack pointer is a stack-segment fault
/// (#SS), which Linux answers with SIGBUS.
fn clone_noncanonical_stack_read_sigbus(_: &Ctx) -> Outcome {
    use forkvm_user::signal::sig::SIGBUS;
    let child = clone_on_stack(0, NONCANONICAL_STACK, ChildAction::Read)?;
    let status = child.wait_bounded("read at a non-canonical stack pointer")?;
    expect_signal("read at a non-canonical stack pointer", status, SIGBUS)
}

extern "C" {
    /// Exits 42 if rsp equals rbx, else 43, without touching the stack.
    fn exit_if_rsp_is_rbx();
}

global_asm!(
    r#"
    .section .text
    .global exit_if_rsp_is_rbx
exit_if_rsp_is_rbx:
    mov edi, 43
    cmp rsp, rbx
    jne 1f
    mov edi, 42
1:  mov eax, 231
    syscall
    ud2
    "#
);

/// `uc_mcontext` word indices (`struct sigcontext`).
const REG_RBX: usize = 11;
const REG_RSP: usize = 15;
const REG_RIP: usize = 16;

/// The stack pointer (and rbx) the SIGUSR1 handler puts in the frame.
static SIGRETURN_RSP: AtomicUsize = AtomicUsize::new(0);
/// The rip it puts there (0: [`exit_if_rsp_is_rbx`]).
static SIGRETURN_RIP: AtomicUsize = AtomicUsize::new(0);

extern "C" fn redirect_return(_: i32, _: *mut SigInfo, uc: *mut u8) {
    let rsp = SIGRETURN_RSP.load(Ordering::SeqCst);
    let rip = match SIGRETURN_RIP.load(Ordering::SeqCst) {
        0 => exit_if_rsp_is_rbx as *const () as usize,
        rip => rip,
    };
    // SAFETY: `uc` is the ucontext the kernel passed; these words lie in
    // its uc_mcontext.
    unsafe {
        let gregs = uc.add(UC_MCONTEXT).cast::<usize>();
        gregs.add(REG_RSP).write(rsp);
        gregs.add(REG_RBX).write(rsp);
        gregs.add(REG_RIP).write(rip);
    }
}

/// In a child: a SIGUSR1 handler rewrites the frame to return to `rip`
/// (0: code that exits 42 if rsp is `rsp`) with stack pointer `rsp`.
fn sigreturn_to(rsp: usize, rip: usize) -> Result<WaitStatus, Msg> {
    let child = Child::spawn(move || {
        SIGRETURN_RSP.store(rsp, Ordering::SeqCst);
        SIGRETURN_RIP.store(rip, Ordering::SeqCst);
        if sigaction(sig::SIGUSR1, redirect_return, 0, 0).is_err() {
            return 2;
        }
        let _ = kill(getpid() as i32, sig::SIGUSR1);
        3 // the handler's return does not come back here
    })?;
    child.wait_bounded("child returning from its handler")
}

/// `rt_sigreturn` to a non-canonical stack pointer: the task runs on with
/// exactly that value (Linux's `sigreturn` selftest checks the same).
fn sigreturn_noncanonical_rsp_runs(_: &Ctx) -> Outcome {
    let status = sigreturn_to(NONCANONICAL_RSP, 0)?;
    expect_exit("rt_sigreturn to a non-canonical rsp", status, 42)
}

/// ... and to a stack pointer on forkvm's kernel side.
fn sigreturn_kernel_side_rsp_runs(_: &Ctx) -> Outcome {
    let status = sigreturn_to(KERNEL_SIDE, 0)?;
    expect_exit("rt_sigreturn to a kernel-side rsp", status, 42)
}

/// A jump to an address on forkvm's kernel side with the stack pointer
/// there too: the fetch faults in user mode, SIGSEGV.
fn jump_kernel_address_kernel_stack_segv(_: &Ctx) -> Outcome {
    let child = Child::spawn(|| {
        // SAFETY: not safe at all, on purpose: the jump faults.
        unsafe {
            asm!(
                "mov rsp, {target}",
                "jmp {target}",
                target = in(reg) KERNEL_SIDE,
                options(noreturn)
            )
        }
    })?;
    let status = child.wait_bounded("child that jumped with a kernel-side stack")?;
    expect_signal("jump with a kernel-side stack", status, SIGSEGV)
}

/// RFLAGS.AC set in user mode while page faults, timer ticks and a system
/// call come in: the kernel must not run its own code with alignment
/// checks on (on the PVM host it runs at hardware CPL 3).
fn alignment_check_flag_survives_traps(_: &Ctx) -> Outcome {
    user_flag_survives_traps(1 << 18, "RFLAGS.AC", true)
}

/// RFLAGS.NT (nested task) likewise: `iretq` with NT set faults, so the
/// kernel must not keep the user's NT in its own flags after `syscall`
/// (on HVM that was a kernel #GP). Whether the task gets it back is not
/// checked: Linux keeps it, the PVM host drops it on every return to user
/// mode (measured), which no kernel code can change.
fn nested_task_flag_survives_traps(_: &Ctx) -> Outcome {
    user_flag_survives_traps(1 << 14, "RFLAGS.NT", false)
}

/// In a child: sets `flag` in RFLAGS, takes 16 page faults, a system call
/// and timer ticks, and exits 0 if the flag is still set (as on Linux) or
/// if `must_keep` is false.
fn user_flag_survives_traps(flag: u64, what: &'static str, must_keep: bool) -> Outcome {
    let map = Mapping::new(16 * 4096)?;
    let base = map.addr();
    let child = Child::spawn(move || {
        let flags_after: u64;
        // SAFETY: only this child's registers and its own fresh mapping
        // (aligned 8-byte writes) are touched; the flag is cleared again.
        unsafe {
            asm!(
                "pushfq",
                "or qword ptr [rsp], {flag}",
                "popfq",
                // A first write to each page: 16 page faults.
                "mov rcx, 16",
                "2:",
                "mov qword ptr [{base}], rcx",
                "add {base}, 4096",
                "dec rcx",
                "jnz 2b",
                // Spin long enough for timer ticks, with a system call.
                "mov eax, 39",
                "syscall",
                "mov rcx, 50000000",
                "3:",
                "dec rcx",
                "jnz 3b",
                "pushfq",
                "pop {flags}",
                "pushfq",
                "and qword ptr [rsp], {clear}",
                "popfq",
                base = inout(reg) base => _,
                flag = in(reg) flag,
                clear = in(reg) !flag,
                flags = out(reg) flags_after,
                out("rax") _,
                out("rcx") _,
                out("r11") _,
            );
        }
        i32::from(must_keep && flags_after & flag == 0)
    })?;
    let status = child.wait_bounded(what)?;
    expect_exit(what, status, 0)
}
