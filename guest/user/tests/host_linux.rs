//! Runs the user programs on the host's Linux: they speak only the Linux
//! system-call ABI, so what they do here is what the forkvm guest kernel
//! must reproduce. Also checks the ELF shape the guest's loader relies on.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Everything at or above this address belongs to the guest kernel.
const USER_LIMIT: u64 = 0x4000_0000_0000;

const PROGRAMS: [(&str, &str); 7] = [
    ("hello", env!("CARGO_BIN_EXE_hello")),
    ("exit_with", env!("CARGO_BIN_EXE_exit_with")),
    ("lat_proc", env!("CARGO_BIN_EXE_lat_proc")),
    ("spin", env!("CARGO_BIN_EXE_spin")),
    ("heapcheck", env!("CARGO_BIN_EXE_heapcheck")),
    ("panicker", env!("CARGO_BIN_EXE_panicker")),
    ("harnessd", env!("CARGO_BIN_EXE_harnessd")),
];

fn run(path: &str, args: &[&str]) -> Output {
    Command::new(path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {path}: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

#[test]
fn hello_prints_pid_and_argv() {
    let path = env!("CARGO_BIN_EXE_hello");
    let out = run(path, &["a", "b"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    let pid: u32 = lines[0]
        .strip_prefix("hello from pid ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("first line: {:?}", lines[0]));
    assert!(pid > 1);
    assert_eq!(lines[1], format!("argv: {path} a b"));
    assert!(out.stderr.is_empty());
}

// Linux has no forkvm_vconsole_open: harnessd says so and exits 1.
#[test]
fn harnessd_needs_the_virtio_console() {
    let out = run(env!("CARGO_BIN_EXE_harnessd"), &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "harnessd: vconsole_open: ENOSYS 38\n"
    );
}

#[test]
fn exit_with_sets_the_exit_status() {
    let path = env!("CARGO_BIN_EXE_exit_with");
    assert_eq!(run(path, &["42"]).status.code(), Some(42));
    assert_eq!(run(path, &[]).status.code(), Some(0));
    assert_eq!(run(path, &["0"]).status.code(), Some(0));
    assert_eq!(run(path, &["255"]).status.code(), Some(255));
    assert_eq!(run(path, &["300"]).status.code(), Some(300 & 0xff));
    let bad = run(path, &["x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr),
        "exit_with: not a decimal number: x\n"
    );
}

/// Runs `lat_proc` and checks its one line: `bench <op> iters=N
/// min_cycles=.. median_cycles=.. p90_cycles=.. max_cycles=..` with
/// 0 < min <= median <= p90 <= max.
fn lat_proc(args: &[&str]) -> [u64; 4] {
    let out = run(env!("CARGO_BIN_EXE_lat_proc"), args);
    assert_eq!(out.status.code(), Some(0), "lat_proc {args:?}: {out:?}");
    assert!(out.stderr.is_empty(), "lat_proc {args:?}: {out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text:?}");
    let fields: Vec<&str> = lines[0].split(' ').collect();
    let iters = args
        .iter()
        .position(|&a| a == "--iters")
        .map_or("1000", |i| args[i + 1]);
    assert_eq!(fields.len(), 7, "{text:?}");
    assert_eq!(fields[0], "bench");
    assert_eq!(fields[1], args[0]);
    assert_eq!(fields[2], format!("iters={iters}"));
    let mut values = [0u64; 4];
    for (i, key) in ["min_cycles", "median_cycles", "p90_cycles", "max_cycles"]
        .iter()
        .enumerate()
    {
        let (k, v) = fields[3 + i].split_once('=').expect("key=value");
        assert_eq!(k, *key, "{text:?}");
        values[i] = v.parse().unwrap_or_else(|_| panic!("{text:?}"));
    }
    let [min, median, p90, max] = values;
    assert!(
        0 < min && min <= median && median <= p90 && p90 <= max,
        "{text:?}"
    );
    values
}

#[test]
fn lat_proc_fork() {
    lat_proc(&["fork", "--iters", "50"]);
}

#[test]
fn lat_proc_vfork() {
    lat_proc(&["vfork", "--iters", "50"]);
}

#[test]
fn lat_proc_thread() {
    lat_proc(&["thread", "--iters", "50"]);
}

#[test]
fn lat_proc_clone_vm() {
    lat_proc(&["clone-vm", "--iters", "50"]);
}

#[test]
fn lat_proc_fork_with_resident_memory() {
    let small = lat_proc(&["fork", "--iters", "20"]);
    let big = lat_proc(&["fork", "--iters", "20", "--mem", "16"]);
    // Copying the page tables of 16 MiB (4096 pages) must show: a generous
    // bound that still catches an ignored --mem.
    assert!(
        big[1] > small[1],
        "--mem 16 median {} vs {}",
        big[1],
        small[1]
    );
}

#[test]
fn lat_proc_rejects_bad_usage() {
    for args in [
        &[][..],
        &["spawn"],
        &["fork", "--iters"],
        &["fork", "--iters", "x"],
        &["fork", "--bogus"],
    ] {
        let out = run(env!("CARGO_BIN_EXE_lat_proc"), args);
        assert_eq!(out.status.code(), Some(2), "lat_proc {args:?}: {out:?}");
        assert!(out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: lat_proc"));
    }
}

#[test]
fn heap_allocator_works() {
    let out = run(env!("CARGO_BIN_EXE_heapcheck"), &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "heapcheck ok\n");
}

#[test]
fn panic_prints_message_and_exits_134() {
    let path = env!("CARGO_BIN_EXE_panicker");
    let out = run(path, &["boom 42"]);
    assert_eq!(out.status.code(), Some(134), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "panic: boom 42\n");
    assert!(out.stdout.is_empty());
    let out = run(path, &[]);
    assert_eq!(out.status.code(), Some(134), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "panic: on purpose\n");
}

#[test]
fn spin_keeps_running_until_killed() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spin"))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn spin");
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().expect("try_wait").is_none(), "spin exited");
    child.kill().expect("kill spin");
    let status = child.wait().expect("wait spin");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9));
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// What `readelf -lh` shows, checked directly: an x86-64 ELF64 `EXEC`
/// (not PIE), static (no `PT_INTERP`/`PT_DYNAMIC`), every `PT_LOAD` below
/// the guest kernel's half, entry point in an executable `PT_LOAD`.
#[test]
fn binaries_are_static_exec_below_the_kernel() {
    const PT_LOAD: u32 = 1;
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const PT_TLS: u32 = 7;
    const PF_X: u32 = 1;
    for (name, path) in PROGRAMS {
        let elf = std::fs::read(path).unwrap();
        assert_eq!(&elf[..4], b"\x7fELF", "{name}");
        assert_eq!(elf[4], 2, "{name}: ELFCLASS64");
        assert_eq!(elf[5], 1, "{name}: little endian");
        assert_eq!(u16_at(&elf, 16), 2, "{name}: e_type must be ET_EXEC");
        assert_eq!(u16_at(&elf, 18), 62, "{name}: e_machine must be x86-64");
        let entry = u64_at(&elf, 24);
        let phoff = u64_at(&elf, 32) as usize;
        let phentsize = u16_at(&elf, 54) as usize;
        let phnum = u16_at(&elf, 56) as usize;
        assert_eq!(phentsize, 56, "{name}");
        let mut loads = 0;
        let mut entry_ok = false;
        for i in 0..phnum {
            let ph = &elf[phoff + i * phentsize..][..phentsize];
            let (p_type, flags) = (u32_at(ph, 0), u32_at(ph, 4));
            let (offset, vaddr, filesz, memsz) = (
                u64_at(ph, 8),
                u64_at(ph, 16),
                u64_at(ph, 32),
                u64_at(ph, 40),
            );
            assert!(
                ![PT_INTERP, PT_DYNAMIC, PT_TLS].contains(&p_type),
                "{name}: segment type {p_type}"
            );
            if p_type == PT_LOAD {
                loads += 1;
                assert!(
                    vaddr >= 0x1000 && vaddr + memsz <= USER_LIMIT,
                    "{name}: LOAD at {vaddr:#x}+{memsz:#x}"
                );
                assert!(filesz <= memsz, "{name}");
                assert_eq!(
                    offset % 4096,
                    vaddr % 4096,
                    "{name}: offset/vaddr congruent mod page"
                );
                if flags & PF_X != 0 && (vaddr..vaddr + memsz).contains(&entry) {
                    entry_ok = true;
                }
            }
        }
        assert!(loads > 0, "{name}: no PT_LOAD");
        assert!(
            entry_ok,
            "{name}: entry {entry:#x} not in an executable PT_LOAD"
        );
    }
}
