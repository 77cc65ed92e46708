//! Program entry: `_start` and the initial-stack parser.
//!
//! Linux (and the forkvm kernel) enter a new program at the ELF entry point
//! with `rsp` pointing at `argc`, followed by the `argv` pointers and a null,
//! the `envp` pointers and a null, then the auxiliary vector. Nothing else is
//! set up for us: no `rbp` frame, no TLS. `_start` clears `rbp` (ends frame
//! chains), hands the stack pointer to [`start_rust`] with `rsp` 16-byte
//! aligned at the call as the SysV ABI requires, and `start_rust` turns the
//! C strings into `&[u8]` slices, calls the program's `main` (named with
//! [`crate::entry!`]) and passes its result to `exit_group`.
//!
//! The auxiliary vector is remembered for [`getauxval`].

/// At most this many arguments are passed to `main`; more are dropped. The
/// slice tables live on the initial stack (no heap is needed to start).
pub const MAX_ARGS: usize = 256;
/// At most this many environment strings are passed to `main`.
pub const MAX_ENV: usize = 256;

#[cfg(not(test))]
core::arch::global_asm!(
    ".globl _start",
    ".type _start, @function",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    // Linux guarantees rsp % 16 == 0 here; re-align anyway so a kernel that
    // does not still gets a correct call.
    "and rsp, -16",
    "call forkvm_user_start_rust",
    "ud2",
    ".size _start, . - _start",
);

/// The length of the NUL-terminated string at `p`.
///
/// # Safety
/// `p` must point to a readable NUL-terminated string.
unsafe fn c_strlen(p: *const u8) -> usize {
    let mut n = 0;
    // A volatile read, so that LLVM cannot turn the loop into a call to
    // `strlen`. SAFETY: the caller guarantees the bytes up to the NUL are
    // readable.
    while unsafe { p.add(n).read_volatile() } != 0 {
        n += 1;
    }
    n
}

/// Reads the `argc, argv..., NULL, envp..., NULL` block at `sp` into the
/// given tables and returns the filled prefixes `(args, env)`. Strings past
/// a table's capacity are dropped.
///
/// # Safety
/// `sp` must point to a well-formed initial process stack whose strings live
/// (unchanged) for `'a`.
pub unsafe fn parse_stack<'a, 't>(
    sp: *const u64,
    args: &'t mut [&'a [u8]],
    env: &'t mut [&'a [u8]],
) -> (&'t [&'a [u8]], &'t [&'a [u8]]) {
    // SAFETY: sp[0] is argc, then argc pointers and a null (caller's contract).
    let argc = unsafe { *sp } as usize;
    // SAFETY: as above; argv starts right after argc.
    let argv = unsafe { sp.add(1) } as *const *const u8;
    let mut nargs = 0;
    for i in 0..argc {
        // SAFETY: i < argc, so argv[i] is a valid C string pointer.
        let s = unsafe { *argv.add(i) };
        if s.is_null() {
            break;
        }
        if nargs < args.len() {
            // SAFETY: s is a NUL-terminated string living for 'a.
            args[nargs] = unsafe { core::slice::from_raw_parts(s, c_strlen(s)) };
            nargs += 1;
        }
    }
    // SAFETY: envp follows argv's terminating null.
    let envp = unsafe { argv.add(argc + 1) };
    let mut nenv = 0;
    let mut i = 0;
    loop {
        // SAFETY: the envp array is null-terminated; we stop at the null.
        let s = unsafe { *envp.add(i) };
        if s.is_null() {
            break;
        }
        if nenv < env.len() {
            // SAFETY: s is a NUL-terminated string living for 'a.
            env[nenv] = unsafe { core::slice::from_raw_parts(s, c_strlen(s)) };
            nenv += 1;
        }
        i += 1;
    }
    (&args[..nargs], &env[..nenv])
}

/// The auxiliary vector of the initial stack at `sp`: the (key, value)
/// pairs after the environment's terminating null, up to AT_NULL.
///
/// # Safety
/// As for [`parse_stack`].
pub unsafe fn auxv_start(sp: *const u64) -> *const u64 {
    // SAFETY: argc, argc pointers and a null, then the environment
    // pointers and their null (caller's contract).
    unsafe {
        let mut p = sp.add(1 + *sp as usize + 1);
        while *p != 0 {
            p = p.add(1);
        }
        p.add(1)
    }
}

/// The auxiliary vector's start, set once before `main` (null before).
static AUXV: core::sync::atomic::AtomicPtr<u64> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// The value of the auxiliary vector entry `key` (Linux `getauxval`), if
/// the kernel passed one.
pub fn getauxval(key: u64) -> Option<u64> {
    let mut p = AUXV.load(core::sync::atomic::Ordering::Relaxed) as *const u64;
    if p.is_null() {
        return None;
    }
    const AT_NULL: u64 = 0;
    loop {
        // SAFETY: `AUXV` points at the kernel's vector on the initial
        // stack, which stays untouched (above `main`'s frames); it ends
        // with AT_NULL.
        let (k, v) = unsafe { (*p, *p.add(1)) };
        if k == AT_NULL {
            return None;
        }
        if k == key {
            return Some(v);
        }
        // SAFETY: not AT_NULL yet, so another pair follows.
        p = unsafe { p.add(2) };
    }
}

/// Called by `_start` with the initial stack pointer; never returns.
///
/// # Safety
/// Only `_start` may call this, with the stack the kernel built.
#[cfg(not(test))]
#[no_mangle]
pub unsafe extern "C" fn forkvm_user_start_rust(sp: *const u64) -> ! {
    extern "Rust" {
        // Defined by the program through `entry!`.
        fn forkvm_user_main(args: &[&[u8]], env: &[&[u8]]) -> i32;
    }
    let mut args: [&[u8]; MAX_ARGS] = [&[]; MAX_ARGS];
    let mut env: [&[u8]; MAX_ENV] = [&[]; MAX_ENV];
    // SAFETY: the kernel built this stack; its strings live until exit.
    let (args, env) = unsafe { parse_stack(sp, &mut args, &mut env) };
    // SAFETY: as above.
    let auxv = unsafe { auxv_start(sp) };
    AUXV.store(auxv.cast_mut(), core::sync::atomic::Ordering::Relaxed);
    // SAFETY: `entry!` defines the symbol with exactly this signature.
    let status = unsafe { forkvm_user_main(args, env) };
    crate::syscall::exit_group(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake initial stack: argc, argv, NULL, envp, NULL, AT_NULL auxv.
    fn fake_stack(args: &[&[u8]], env: &[&[u8]]) -> (Vec<u64>, Vec<Vec<u8>>) {
        let strings: Vec<Vec<u8>> = args
            .iter()
            .chain(env)
            .map(|s| {
                let mut v = s.to_vec();
                v.push(0);
                v
            })
            .collect();
        let mut stack = vec![args.len() as u64];
        stack.extend(strings[..args.len()].iter().map(|s| s.as_ptr() as u64));
        stack.push(0);
        stack.extend(strings[args.len()..].iter().map(|s| s.as_ptr() as u64));
        stack.extend([0, 0, 0]);
        (stack, strings)
    }

    #[test]
    fn parses_argv_and_envp() {
        let (stack, _strings) = fake_stack(&[b"prog", b"a", b"", b"bc d"], &[b"A=1", b"PATH=/bin"]);
        let mut a = [&[][..]; 8];
        let mut e = [&[][..]; 8];
        // SAFETY: a well-formed fake stack whose strings outlive the call.
        let (args, env) = unsafe { parse_stack(stack.as_ptr(), &mut a, &mut e) };
        assert_eq!(args, [&b"prog"[..], b"a", b"", b"bc d"]);
        assert_eq!(env, [&b"A=1"[..], b"PATH=/bin"]);
    }

    #[test]
    fn finds_the_auxiliary_vector() {
        let (mut stack, _strings) = fake_stack(&[b"prog", b"a"], &[b"A=1"]);
        let at = stack.len() - 2;
        stack.splice(at..at, [6, 4096]);
        // SAFETY: as above.
        let auxv = unsafe { auxv_start(stack.as_ptr()) };
        // SAFETY: the vector lies inside `stack`.
        assert_eq!(unsafe { [*auxv, *auxv.add(1), *auxv.add(2)] }, [6, 4096, 0]);
    }

    #[test]
    fn empty_and_truncated() {
        let (stack, _strings) = fake_stack(&[], &[]);
        let mut a = [&[][..]; 2];
        let mut e = [&[][..]; 2];
        // SAFETY: as above.
        let (args, env) = unsafe { parse_stack(stack.as_ptr(), &mut a, &mut e) };
        assert!(args.is_empty() && env.is_empty());

        let (stack, _strings) = fake_stack(&[b"p", b"1", b"2"], &[b"X=1", b"Y=2", b"Z=3"]);
        // SAFETY: as above.
        let (args, env) = unsafe { parse_stack(stack.as_ptr(), &mut a, &mut e) };
        assert_eq!(args, [&b"p"[..], b"1"]);
        assert_eq!(env, [&b"X=1"[..], b"Y=2"]);
    }
}
