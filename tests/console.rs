//! The interactive shell on the serial console, driven through a pipe and
//! through a pseudo-terminal (raw mode, line editing, the escape key), and
//! the virtio console through the guest driver (`vconsole-echo`).

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{code, stderr, stdout, FORKVM, GUEST_TIMEOUT_SECS};

#[test]
fn shell_through_a_pipe() {
    require_kvm!();
    let mut child = Command::new(FORKVM)
        .args(["--timeout", GUEST_TIMEOUT_SECS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // More than the UART's 64-byte FIFO at once: the VMM must hold the rest.
    let mut input = String::from("help\n");
    for i in 0..20 {
        input.push_str(&format!("echo line-{i}\n"));
    }
    input.push_str("poweroff 3\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 3, "stderr: {}", stderr(&out));
    let text = stdout(&out);
    for command in [
        "help",
        "echo [WORD...]",
        "meminfo",
        "uptime",
        "ticks [MS]",
        "poweroff [N]",
    ] {
        assert!(text.contains(command), "help lists {command}: {text}");
    }
    assert!(
        !text.contains("panic [MESSAGE]"),
        "hidden commands stay hidden"
    );
    for i in 0..20 {
        assert!(
            text.contains(&format!("\r\nline-{i}\r\n")),
            "line-{i} missing: {text}"
        );
    }
}

/// A pseudo-terminal pair: the test holds the master, forkvm gets the slave.
struct Pty {
    master: std::fs::File,
    slave: OwnedFd,
}

impl Pty {
    fn open() -> Pty {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty writes two descriptors into the provided ints.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned here.
        unsafe {
            libc::fcntl(master, libc::F_SETFL, libc::O_NONBLOCK);
            Pty {
                master: std::fs::File::from_raw_fd(master),
                slave: OwnedFd::from_raw_fd(slave),
            }
        }
    }

    fn termios(&self) -> libc::termios {
        // SAFETY: termios is plain data filled by tcgetattr on a valid fd.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(self.slave.as_raw_fd(), &mut t), 0);
            t
        }
    }

    fn spawn_forkvm(&self) -> Child {
        let stdio = || Stdio::from(self.slave.try_clone().unwrap());
        Command::new(FORKVM)
            .args(["--timeout", GUEST_TIMEOUT_SECS])
            .stdin(stdio())
            .stdout(stdio())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    /// Reads until `needle` has appeared in the output gathered so far.
    fn expect(&mut self, seen: &mut String, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buffer = [0u8; 1024];
        while !seen.contains(needle) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?}; got {seen:?}"
            );
            match self.master.read(&mut buffer) {
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buffer[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("reading the pty: {e}; got {seen:?}"),
            }
        }
    }
}

fn same_settings(a: &libc::termios, b: &libc::termios) -> bool {
    a.c_iflag == b.c_iflag
        && a.c_oflag == b.c_oflag
        && a.c_cflag == b.c_cflag
        && a.c_lflag == b.c_lflag
}

#[test]
fn shell_on_a_terminal_with_line_editing_and_escape_key() {
    require_kvm!();
    let mut pty = Pty::open();
    let before = pty.termios();
    assert!(
        before.c_lflag & libc::ICANON != 0,
        "a new pty starts in canonical mode"
    );
    let mut child = pty.spawn_forkvm();
    let mut seen = String::new();
    pty.expect(&mut seen, "forkvm> ");
    assert!(
        !same_settings(&before, &pty.termios()),
        "forkvm puts the terminal in raw mode"
    );

    // Backspace and cursor movement: "echo helo", left, insert "l", enter.
    pty.send(b"echo helo\x1b[Dl\r");
    pty.expect(&mut seen, "hello\r\nforkvm> ");
    // History: up arrow recalls the last line.
    seen.clear();
    pty.send(b"\x1b[A\r");
    pty.expect(&mut seen, "hello\r\nforkvm> ");
    // Ctrl-U kills the line typed so far.
    seen.clear();
    pty.send(b"echo wrong\x15echo right\r");
    pty.expect(&mut seen, "right\r\n");
    assert!(!seen.contains("wrong\r\n"), "{seen:?}");

    // Ctrl-] quits forkvm and the terminal comes back as it was.
    pty.send(b"\x1d");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        same_settings(&before, &pty.termios()),
        "terminal settings restored on exit"
    );
}

#[test]
fn terminal_restored_after_guest_panic() {
    require_kvm!();
    let mut pty = Pty::open();
    let before = pty.termios();
    let child = pty.spawn_forkvm();
    let mut seen = String::new();
    pty.expect(&mut seen, "forkvm> ");
    pty.send(b"panic from the terminal\r");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(101));
    assert!(String::from_utf8_lossy(&out.stderr).contains("guest kernel panic: from the terminal"));
    assert!(
        same_settings(&before, &pty.termios()),
        "terminal settings restored after a panic"
    );
}

/// Serial output collected by a test (the `serial_out` of `vmm::run_with`).
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The guest's virtio-console driver end to end: the host pushes 4096
/// bytes into the receive queue, the shell's `vconsole-echo` reads them
/// through `forkvm_vconsole_open`'s descriptor and writes them back, and
/// the exact bytes come out of the device's transmit side.
#[test]
fn virtio_console_echo() {
    require_kvm!();
    const N: usize = 4096;
    let pattern: Vec<u8> = (0..N).map(|i| (i * 7 + i / 256) as u8).collect();
    let mut config = vmm::VmConfig::new(vmm::BUILT_KERNEL.into());
    config.script = Some(format!("vconsole-echo {N}"));
    config.timeout = Some(Duration::from_secs(60));
    let serial = Capture::default();
    let mut console = None;
    let (outcome, timings) = vmm::run_with(&config, Box::new(serial.clone()), |io| {
        io.push_input(&pattern);
        console = Some(io.clone());
    })
    .expect("the VM runs");
    let text = String::from_utf8_lossy(&serial.0.lock().unwrap()).into_owned();
    assert_eq!(
        outcome,
        vmm::Outcome::Guest(vmm::GuestExit::Poweroff(0)),
        "serial: {text}"
    );
    assert!(
        text.contains(&format!("vconsole-echo: {N} bytes\n")),
        "serial: {text}"
    );
    let echoed = console.unwrap().take_output();
    assert_eq!(echoed.len(), N, "serial: {text}");
    assert!(echoed == pattern, "the echo differs from what was sent");
    eprintln!(
        "virtio_console_echo: {N} bytes, guest run {:.3} ms (boot included)",
        timings.guest.as_secs_f64() * 1e3
    );
}

/// The guest driver notices a device that sets DEVICE_NEEDS_RESET (the
/// host fails it with `ConsoleIo::fail`): it logs it, and the blocked
/// `vconsole-echo` gets EIO instead of waiting for ever. The driver reads
/// InterruptStatus only for interrupts that brought no used buffers, so
/// both orders matter: the failure alone while the guest waits for input
/// (`merged: false`), and the failure right after input, whose interrupt
/// edges can merge into one that also brought buffers (`merged: true`;
/// then the device's reminder on the guest's next notify gets it seen).
/// A driver that missed it would leave the guest waiting until the timeout.
fn broken_device_is_noticed(merged: bool) {
    let mut config = vmm::VmConfig::new(vmm::BUILT_KERNEL.into());
    config.script = Some("vconsole-echo 1000".into());
    config.timeout = Some(Duration::from_secs(60));
    let serial = Capture::default();
    let mut host = None;
    let (outcome, _) = vmm::run_with(&config, Box::new(serial.clone()), |io| {
        let io = io.console().clone();
        io.push_input(b"ping");
        host = Some(std::thread::spawn(move || {
            // The echo says the guest has read everything and waits again.
            let deadline = Instant::now() + Duration::from_secs(50);
            let mut echoed = Vec::new();
            while echoed != b"ping" && Instant::now() < deadline {
                echoed.extend(io.take_output());
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(echoed, b"ping");
            if merged {
                io.push_input(b"pong");
            }
            assert!(io.fail("a test fails the device"));
        }));
    })
    .expect("the VM runs");
    host.unwrap().join().unwrap();
    let text = String::from_utf8_lossy(&serial.0.lock().unwrap()).into_owned();
    assert_eq!(
        outcome,
        vmm::Outcome::Guest(vmm::GuestExit::Poweroff(1)),
        "serial: {text}"
    );
    assert!(
        text.contains("virtio-console: device needs a reset; not used any more"),
        "serial: {text}"
    );
    assert!(
        text.contains("vconsole-echo: read: EIO") || text.contains("vconsole-echo: write: EIO"),
        "serial: {text}"
    );
}

#[test]
fn virtio_console_broken_device_while_idle() {
    require_kvm!();
    broken_device_is_noticed(false);
}

#[test]
fn virtio_console_broken_device_right_after_input() {
    require_kvm!();
    broken_device_is_noticed(true);
}
