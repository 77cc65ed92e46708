//! Shell builtins and the read-eval loop.

use alloc::string::String;
use alloc::vec::Vec;

use super::line_editor::{LineEditor, LineEvent};
use crate::arch::platform;
use crate::drivers::uart::{INPUT, INPUT_WAIT};
use crate::drivers::vmm_ports;
use crate::{mm, println, time};

const PROMPT: &str = "forkvm> ";

/// Exit status of a command (shell convention: 0 = success).
type Status = u32;
/// Status of an unknown command, as in POSIX shells.
const STATUS_NOT_FOUND: Status = 127;
/// Status of a usage error.
const STATUS_USAGE: Status = 2;

struct Command {
    name: &'static str,
    usage: &'static str,
    help: &'static str,
    run: fn(&[&str]) -> Status,
    /// Left out of `help` (test hooks).
    hidden: bool,
}

const COMMANDS: &[Command] = &[
    Command {
        name: "help",
        usage: "help",
        help: "list the commands",
        run: cmd_help,
        hidden: false,
    },
    Command {
        name: "echo",
        usage: "echo [WORD...]",
        help: "print the words",
        run: cmd_echo,
        hidden: false,
    },
    Command {
        name: "meminfo",
        usage: "meminfo",
        help: "physical frames (total/free) and kernel heap",
        run: cmd_meminfo,
        hidden: false,
    },
    Command {
        name: "uptime",
        usage: "uptime",
        help: "time since boot and timer ticks",
        run: cmd_uptime,
        hidden: false,
    },
    Command {
        name: "ticks",
        usage: "ticks [MS]",
        help: "measure timer ticks delivered while the kernel spins, idles and runs user code",
        run: cmd_ticks,
        hidden: false,
    },
    Command {
        name: "poweroff",
        usage: "poweroff [N]",
        help: "power the VM off; forkvm exits with status N (default 0)",
        run: cmd_poweroff,
        hidden: false,
    },
    Command {
        name: "run",
        usage: "run PROG [ARGS...]",
        help: "run a user program and wait for it; prints how it ended",
        run: cmd_run,
        hidden: false,
    },
    Command {
        name: "ps",
        usage: "ps",
        help: "list the tasks",
        run: cmd_ps,
        hidden: false,
    },
    Command {
        name: "spin",
        usage: "spin",
        help: "start a user process that computes forever (preemption test)",
        run: cmd_spin,
        hidden: false,
    },
    Command {
        name: "stat",
        usage: "stat",
        help: "kernel event counters",
        run: cmd_stat,
        hidden: false,
    },
    Command {
        name: "kill",
        usage: "kill PID",
        help: "kill a process (SIGKILL)",
        run: cmd_kill,
        hidden: false,
    },
    Command {
        name: "sleep",
        usage: "sleep MS",
        help: "sleep MS milliseconds",
        run: cmd_sleep,
        hidden: false,
    },
    Command {
        name: "sysctl",
        usage: "sysctl NAME[=VALUE]",
        help: "show or set a kernel setting (kernel.sched_child_runs_first)",
        run: cmd_sysctl,
        hidden: false,
    },
    Command {
        name: "programs",
        usage: "programs",
        help: "list the user programs",
        run: cmd_programs,
        hidden: false,
    },
    Command {
        name: "sysprobe",
        usage: "sysprobe [N]",
        help: "time N getpid system calls from user mode",
        run: cmd_sysprobe,
        hidden: false,
    },
    Command {
        name: "panic",
        usage: "panic [MESSAGE]",
        help: "panic the kernel",
        run: cmd_panic,
        hidden: true,
    },
    Command {
        name: "fault",
        usage: "fault",
        help: "touch an unmapped kernel address",
        run: cmd_fault,
        hidden: true,
    },
];

/// Runs the shell: the boot script if there is one, else the prompt.
pub fn run(script: Option<&str>) -> ! {
    match script {
        Some(script) => {
            let mut status = 0;
            for line in script.split(['\n', ';']) {
                status = execute(line).unwrap_or(status);
            }
            vmm_ports::poweroff(status)
        }
        None => interactive(),
    }
}

fn interactive() -> ! {
    println!(
        "forkvm guest kernel: platform {}, {} MiB, TSC {} kHz, booted in {} us. Type 'help'.",
        platform::current().name(),
        (mm::frame_counts().0 * 4096) >> 20,
        time::tsc_khz(),
        time::uptime_ns() / 1000
    );
    let mut editor = LineEditor::new(64);
    let mut out = |bytes: &[u8]| crate::console::write_raw(bytes);
    editor.start(PROMPT, &mut out);
    loop {
        let byte = read_byte();
        match editor.feed(byte, &mut out) {
            LineEvent::Pending => continue,
            LineEvent::Line(line) => {
                execute(&line);
            }
            LineEvent::Interrupt | LineEvent::EndOfInput => {}
        }
        editor.start(PROMPT, &mut out);
    }
}

/// Waits for the next input byte, sleeping until the UART interrupt.
fn read_byte() -> u8 {
    let mut byte = None;
    // Kernel threads get no fatal signals, so this wait is never cut short.
    let _ = INPUT_WAIT.wait_until(|| {
        byte = INPUT.pop();
        byte.is_some()
    });
    byte.expect("woken with input")
}

/// Reaps exited children: as pid 1 the shell adopts orphans, and init
/// must wait for them or they stay zombies.
fn reap_orphans() {
    use crate::process::wait::{do_wait, WaitFor, WNOHANG};
    while let Ok(Some(_)) = do_wait(WaitFor::Any, WNOHANG) {}
}

/// Runs one command line; `None` for an empty line.
fn execute(line: &str) -> Option<Status> {
    reap_orphans();
    let words: Vec<&str> = line.split_whitespace().collect();
    let (&name, args) = words.split_first()?;
    let status = match COMMANDS.iter().find(|c| c.name == name) {
        Some(command) => (command.run)(args),
        None => {
            println!("{name}: command not found (try 'help')");
            STATUS_NOT_FOUND
        }
    };
    Some(status)
}

fn usage(name: &str) -> Status {
    if let Some(command) = COMMANDS.iter().find(|c| c.name == name) {
        println!("usage: {}", command.usage);
    }
    STATUS_USAGE
}

fn cmd_help(_: &[&str]) -> Status {
    for command in COMMANDS.iter().filter(|c| !c.hidden) {
        println!("  {:<16} {}", command.usage, command.help);
    }
    0
}

fn cmd_echo(args: &[&str]) -> Status {
    let mut line = String::new();
    for (i, word) in args.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(word);
    }
    println!("{line}");
    0
}

fn cmd_meminfo(_: &[&str]) -> Status {
    let (total, free) = mm::frame_counts();
    let (heap_used, heap_size) = mm::heap::usage();
    println!(
        "frames: total={total} free={free} used={} ({} KiB free of {} KiB); heap: used={heap_used} size={heap_size}; \
         cached kernel stacks: {}; pooled page tables: {}",
        total - free,
        free * 4,
        total * 4,
        crate::mm::kstack::cached_stacks(),
        crate::mm::pooled_tables()
    );
    0
}

fn cmd_uptime(_: &[&str]) -> Status {
    let ns = time::uptime_ns();
    println!(
        "up {}.{:06} s, {} ticks at {} Hz, {} context switches",
        ns / 1_000_000_000,
        ns % 1_000_000_000 / 1000,
        time::ticks(),
        time::TICK_HZ,
        crate::sched::switches()
    );
    0
}

/// Counts ticks over a window, first with the kernel spinning (interrupts
/// enabled), then with it halted in the idle loop.
fn cmd_ticks(args: &[&str]) -> Status {
    let ms = match args {
        [] => 100,
        [ms] => match ms.parse::<u64>() {
            Ok(ms) if (1..=crate::diag::MAX_WINDOW_MS).contains(&ms) => ms,
            _ => return usage("ticks"),
        },
        _ => return usage("ticks"),
    };
    let report = match crate::diag::measure_ticks(ms) {
        Ok(report) => report,
        Err(errno) => {
            println!("ticks: cannot measure: {}", crate::errno::name(errno));
            return 1;
        }
    };
    let mode = if report.timer_mode == 1 {
        "periodic"
    } else {
        "tsc-deadline"
    };
    let us = |ns: u64| ns as f64 / 1000.0;
    println!(
        "ticks over {ms} ms (expected {} at {} Hz, {mode} timer): kernel-busy={} idle={} user={}; \
         cost per tick: kernel {:.1} us, user {:.1} us",
        report.expected,
        report.tick_hz,
        report.kernel_busy,
        report.idle,
        report.user,
        us(report.kernel_cost_ns),
        us(report.user_cost_ns),
    );
    0
}

fn cmd_sysprobe(args: &[&str]) -> Status {
    let iterations = match args {
        [] => 1000,
        [n] => match n.parse::<u64>() {
            Ok(n) if (1..=1_000_000).contains(&n) => n,
            _ => return usage("sysprobe"),
        },
        _ => return usage("sysprobe"),
    };
    match crate::arch::user_probe::syscalls_from_user_mode(iterations) {
        Ok(cycles) => {
            let ns = time::tsc_to_ns(cycles / iterations);
            println!(
                "sysprobe: {iterations} getpid calls from user mode, {}.{:03} us each",
                ns / 1000,
                ns % 1000
            );
            0
        }
        Err(e) => {
            println!("sysprobe: {e}");
            1
        }
    }
}

/// Status a shell reports for a child: its exit code, or 128 + signal.
fn shell_status(wait_status: u32) -> Status {
    if wait_status & 0x7f == 0 {
        (wait_status >> 8) & 0xff
    } else {
        128 + (wait_status & 0x7f)
    }
}

fn cmd_run(args: &[&str]) -> Status {
    use crate::process::wait::{do_wait, WaitFor};
    let Some(program) = args.first() else {
        return usage("run");
    };
    let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let pid = match crate::process::exec::spawn_user_process(program.as_bytes(), &argv) {
        Ok(pid) => pid,
        Err(errno) => {
            println!("run: {program}: {}", crate::errno::name(errno));
            return if errno == crate::errno::ENOENT {
                STATUS_NOT_FOUND
            } else {
                126
            };
        }
    };
    match do_wait(WaitFor::Pid(pid), 0) {
        Ok(Some((_, status))) => {
            let code = shell_status(status);
            if status & 0x7f == 0 {
                println!("[{pid}] exited with status {code}");
            } else {
                println!("[{pid}] killed by signal {}", status & 0x7f);
            }
            code
        }
        other => {
            println!("run: wait for {pid} failed: {other:?}");
            1
        }
    }
}

fn cmd_ps(_: &[&str]) -> Status {
    println!(
        "{:>5} {:>5} {:>5} {:>4} {:>2} {:>8} COMMAND",
        "PID", "PPID", "TGID", "UID", "S", "VSZ_KB"
    );
    for task in crate::process::all_tasks() {
        let comm = task.comm();
        let len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
        let ppid = task.inner.lock().parent.upgrade().map_or(0, |p| p.tgid);
        let name = core::str::from_utf8(&comm[..len]).unwrap_or("?");
        let vsz_kb = task.mm().map_or(0, |mm| mm.total_pages() * 4);
        let state = task.state().letter();
        println!(
            "{:>5} {:>5} {:>5} {:>4} {:>2} {vsz_kb:>8} {name}",
            task.pid, ppid, task.tgid, 0, state
        );
    }
    0
}

fn cmd_stat(_: &[&str]) -> Status {
    let mut line = String::new();
    for (i, (name, value)) in crate::stats::all().iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(&alloc::format!("{name}={value}"));
    }
    println!("{line}");
    0
}

fn cmd_spin(_: &[&str]) -> Status {
    match crate::process::exec::spawn_user_process(b"spin", &[b"spin"]) {
        Ok(pid) => {
            println!("[{pid}] spin");
            0
        }
        Err(errno) => {
            println!("spin: {}", crate::errno::name(errno));
            1
        }
    }
}

fn cmd_kill(args: &[&str]) -> Status {
    let [pid] = args else { return usage("kill") };
    let Ok(pid) = pid.parse::<u32>() else {
        return usage("kill");
    };
    match crate::process::find(pid).filter(|task| task.mm().is_some()) {
        Some(task) => {
            task.set_fatal(crate::process::exit::signal_status(9));
            // Reap it if it is ours, as an interactive shell would.
            let _ = crate::process::wait::do_wait(crate::process::wait::WaitFor::Pid(pid), 0);
            0
        }
        None => {
            println!("kill: ({pid}): no such process");
            1
        }
    }
}

fn cmd_sleep(args: &[&str]) -> Status {
    let [ms] = args else { return usage("sleep") };
    let Ok(ms) = ms.parse::<u64>() else {
        return usage("sleep");
    };
    crate::sched::sleep_for_ns(ms.saturating_mul(1_000_000));
    0
}

fn cmd_sysctl(args: &[&str]) -> Status {
    let [setting] = args else {
        return usage("sysctl");
    };
    let (name, value) = match setting.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (*setting, None),
    };
    match name {
        "kernel.sched_child_runs_first" => {
            if let Some(value) = value {
                match value.parse::<u32>() {
                    Ok(v) => crate::sched::set_child_runs_first(v != 0),
                    Err(_) => {
                        println!("sysctl: {value}: invalid argument");
                        return 1;
                    }
                }
            }
            println!("{name} = {}", u32::from(crate::sched::child_runs_first()));
            0
        }
        "vm.fork_eager_stack_pages" => {
            if let Some(value) = value {
                let set = value
                    .parse::<u64>()
                    .map_err(|_| 0)
                    .and_then(crate::process::fork::set_eager_stack_pages);
                if set.is_err() {
                    println!("sysctl: {value}: invalid argument");
                    return 1;
                }
            }
            println!("{name} = {}", crate::process::fork::eager_stack_pages());
            0
        }
        _ => {
            println!("sysctl: cannot stat {name}: No such file or directory");
            1
        }
    }
}

fn cmd_programs(_: &[&str]) -> Status {
    for name in crate::programs::names() {
        println!("{name}");
    }
    0
}

fn cmd_poweroff(args: &[&str]) -> Status {
    let status = match args {
        [] => 0,
        [n] => match n.parse::<u8>() {
            Ok(n) => u32::from(n),
            Err(_) => return usage("poweroff"),
        },
        _ => return usage("poweroff"),
    };
    vmm_ports::poweroff(status)
}

fn cmd_panic(args: &[&str]) -> Status {
    if args.is_empty() {
        panic!("requested from the shell");
    }
    let message = args.join(" ");
    panic!("{message}");
}

fn cmd_fault(_: &[&str]) -> Status {
    // An address in the kernel half that the direct map does not cover.
    let address = forkvm_abi::PAGE_OFFSET + (1 << 45);
    // SAFETY: not safe at all: this deliberately faults to test exception
    // reporting; the page-fault handler stops the kernel.
    unsafe { core::ptr::read_volatile(address as *const u64) };
    0
}
