//! Booting the guest: script mode, exit statuses, crashes, memory sizes,
//! the timer. Every test boots a real guest under KVM.

mod common;

use common::{code, run_script, stderr, stdout};

#[test]
fn echo_prints_and_exits_zero() {
    require_kvm!();
    let out = run_script("echo hello", &[]);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "hello\n");
}

#[test]
fn poweroff_status_becomes_exit_status() {
    require_kvm!();
    let out = run_script("poweroff 7", &[]);
    assert_eq!(code(&out), 7, "stderr: {}", stderr(&out));
    let out = run_script("poweroff", &[]);
    assert_eq!(code(&out), 0);
}

#[test]
fn commands_run_in_order_and_poweroff_stops_the_script() {
    require_kvm!();
    let out = run_script(
        "echo one; echo two\necho three; poweroff 5; echo never",
        &[],
    );
    assert_eq!(code(&out), 5);
    assert_eq!(stdout(&out), "one\ntwo\nthree\n");
}

#[test]
fn last_command_status_is_the_exit_status() {
    require_kvm!();
    let out = run_script("echo fine; no-such-command", &[]);
    assert_eq!(code(&out), 127);
    assert!(
        stdout(&out).contains("no-such-command: command not found"),
        "{}",
        stdout(&out)
    );
    let out = run_script("no-such-command; echo fine", &[]);
    assert_eq!(code(&out), 0);
    let out = run_script("poweroff notanumber", &[]);
    assert_eq!(code(&out), 2, "usage errors give status 2");
    assert!(stdout(&out).contains("usage: poweroff [N]"));
}

#[test]
fn guest_panic_is_reported_with_its_message() {
    require_kvm!();
    let out = run_script("echo before; panic the sky is falling", &[]);
    assert_eq!(code(&out), 101);
    assert_eq!(stdout(&out), "before\n");
    assert!(
        stderr(&out).contains("guest kernel panic: the sky is falling"),
        "stderr: {}",
        stderr(&out)
    );
}

#[test]
fn kernel_page_fault_is_reported_with_vector_rip_cr2_and_error() {
    require_kvm!();
    let out = run_script("fault", &[]);
    assert_eq!(code(&out), 101);
    let err = stderr(&out);
    assert!(
        err.contains("#PF page fault (vector 14) in kernel mode"),
        "stderr: {err}"
    );
    assert!(
        err.contains("cr2=0x600000000000"),
        "the faulting address is reported: {err}"
    );
    assert!(
        err.contains("rip=0x4000"),
        "the kernel RIP is reported: {err}"
    );
    assert!(
        err.contains("error=0x"),
        "the error code is reported: {err}"
    );
}

/// `meminfo` prints `frames: total=N free=N ...`.
fn frame_counts(script_output: &str) -> (u64, u64) {
    let field = |name: &str| -> u64 {
        let start = script_output
            .find(name)
            .unwrap_or_else(|| panic!("no {name} in {script_output}"))
            + name.len();
        script_output[start..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("total="), field("free="))
}

#[test]
fn memory_size_option_sets_guest_ram() {
    require_kvm!();
    for (arg, mib) in [("64M", 64u64), ("256M", 256), ("1G", 1024), ("4G", 4096)] {
        let out = run_script("meminfo", &["--mem", arg]);
        assert_eq!(code(&out), 0, "--mem {arg}: {}", stderr(&out));
        let (total, free) = frame_counts(&stdout(&out));
        let ram_frames = mib * 256;
        // The kernel image, frame metadata and heap are not in the allocator.
        assert!(
            total < ram_frames && total > ram_frames * 3 / 4,
            "--mem {arg}: {total} of {ram_frames} frames"
        );
        // At boot only init's and the shell's memory, kernel stacks and
        // page tables are used, and the virtio console's 4 pages (two
        // rings, the receive and the transmit buffers).
        assert!(
            total - free < 100,
            "--mem {arg}: {} frames used at boot",
            total - free
        );
    }
}

#[test]
fn timer_ticks_arrive_in_kernel_idle_and_user_mode() {
    require_kvm!();
    let out = run_script("ticks 100", &[]);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let text = stdout(&out);
    for mode in ["kernel-busy=", "idle=", "user="] {
        let start = text
            .find(mode)
            .unwrap_or_else(|| panic!("no {mode} in {text}"))
            + mode.len();
        let ticks: u64 = text[start..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ticks > 0, "no timer interrupt delivered in {mode}: {text}");
    }
}

#[test]
fn uptime_advances() {
    require_kvm!();
    // Behaviour, not speed: time moves forward, and by at least what a
    // sleep asked for (how long the boot took is not this test's business).
    let out = run_script("uptime; sleep 50; uptime", &[]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let seconds: Vec<f64> = text
        .lines()
        .map(|line| {
            let value = line
                .strip_prefix("up ")
                .and_then(|rest| rest.split(' ').next());
            value
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{text}"))
        })
        .collect();
    assert_eq!(seconds.len(), 2, "{text}");
    assert!(seconds[0] > 0.0, "{text}");
    assert!(seconds[1] - seconds[0] >= 0.050, "slept 50 ms: {text}");
}

#[test]
fn timeout_stops_a_guest_that_never_powers_off() {
    require_kvm!();
    // The interactive shell waits for input forever (stdin is /dev/null).
    let out = std::process::Command::new(common::FORKVM)
        .args(["--timeout", "1"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 124);
    assert!(
        stderr(&out).contains("timed out after 1.0 s"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn timeout_stops_a_guest_busy_in_the_kernel() {
    require_kvm!();
    // `ticks 10000` keeps the guest busy for 30 s without any exit to the VMM.
    let out = std::process::Command::new(common::FORKVM)
        .args(["--timeout", "1", "-c", "ticks 10000"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 124);
}

#[test]
fn guest_sees_the_virtio_console() {
    require_kvm!();
    let out = run_script("devices", &[]);
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let prefix = format!(
        "virtio-mmio@{:#x} gsi={} ",
        forkvm_abi::VIRTIO_CONSOLE_MMIO_BASE,
        forkvm_abi::VIRTIO_CONSOLE_GSI
    );
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no virtio console at the advertised base: {text:?}"));
    let expected = format!(
        "{prefix}device=console version=2 vendor={:#x}",
        vmm::devices::virtio::mmio::VENDOR_ID
    );
    assert!(line.starts_with(&expected), "{line:?}");
    // The probe's register reads were timed (each one an exit to the VMM).
    let ns: u64 = line
        .rsplit_once(" mmio_read_ns=")
        .and_then(|(_, ns)| ns.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(ns > 0, "{line:?}");
}
