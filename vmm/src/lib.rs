//! forkvm's virtual machine monitor: boots the forkvm guest kernel under
//! KVM and connects its serial console to the terminal.
//!
//! [`run`] is the whole life of a VM: build it ([`builder`]), start the vCPU
//! thread ([`vcpu`]), run the event loop ([`event_loop`]) until the guest
//! powers off, panics, crashes, times out or the user quits.

pub mod boot;
pub mod builder;
pub mod config;
pub mod devices;
pub mod error;
pub mod event_loop;
pub mod exits;
pub mod initrd;
pub mod kvm_stats;
pub mod linux_boot;
pub mod memory;
pub mod platform;
pub mod terminal;
pub mod topology;
pub mod vcpu;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Once};
use std::time::{Duration, Instant};

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

pub use crate::config::VmConfig;
use crate::devices::serial::FlushingStdout;
pub use crate::devices::virtio::console::ConsoleIo;
pub use crate::error::{Error, Result};
use crate::event_loop::{LoopEnd, LoopInputs};
pub use crate::exits::{ExitCounters, VmExits};
pub use crate::kvm_stats::KvmStats;
use crate::terminal::RawTerminal;
pub use crate::vcpu::GuestExit;

/// Path of the guest kernel built with this VMM (see build.rs).
pub const BUILT_KERNEL: &str = env!("FORKVM_GUEST_KERNEL");

/// The directory of the static user programs built with it (`harnessd`,
/// ...; see build.rs), unless the kernel was prebuilt.
pub const USER_PROGRAMS_DIR: Option<&str> = option_env!("FORKVM_USER_PROGRAMS_DIR");

/// How a VM run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest stopped by itself (or was stopped by the VMM: `Stopped`).
    Guest(GuestExit),
    /// `--timeout` expired.
    Timeout(Duration),
    /// The user pressed the escape key.
    Quit,
}

/// Signal used to kick the vCPU thread out of `KVM_RUN`.
fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

extern "C" fn ignore_signal(_: libc::c_int) {}

fn install_kick_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a handler that does nothing, installed without SA_RESTART
        // so a blocked KVM_RUN returns EINTR.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore_signal as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(kick_signal(), &action, std::ptr::null_mut());
        }
    });
}

/// What a vCPU thread reports when its loop ends.
struct VcpuReport {
    cpu: usize,
    exit: GuestExit,
    entered: Instant,
    exited: Instant,
}

/// Stops every vCPU thread still running and collects the reports of all
/// (`already` holds those received before). It sets the flag, then kicks
/// each thread that has not reported out of `KVM_RUN`, again every 10 ms
/// because a kick can land just before the thread re-enters. Returns once
/// every thread has dropped its sender: each has left its loop then.
///
/// A thread that has reported is never kicked again. Kicking it in a tight
/// loop while it exits (the channel is already closed, so nothing paces
/// the loop) keeps it delivering signals without end: under nested SVM
/// that livelocked both threads.
fn stop_vcpus(
    stop: &AtomicBool,
    threads: &[std::thread::JoinHandle<()>],
    reports: &mpsc::Receiver<VcpuReport>,
    already: Vec<VcpuReport>,
) -> Vec<VcpuReport> {
    use std::os::unix::thread::JoinHandleExt;
    stop.store(true, Ordering::Release);
    let mut reported = vec![false; threads.len()];
    for report in &already {
        reported[report.cpu] = true;
    }
    let mut received = already;
    loop {
        for (cpu, thread) in threads.iter().enumerate() {
            if !reported[cpu] && !thread.is_finished() {
                // SAFETY: the thread has not finished, so its pthread is
                // valid, and the signal has a no-op handler.
                unsafe { libc::pthread_kill(thread.as_pthread_t(), kick_signal()) };
            }
        }
        match reports.recv_timeout(Duration::from_millis(10)) {
            Ok(report) => {
                reported[report.cpu] = true;
                received.push(report);
                while let Ok(report) = reports.try_recv() {
                    reported[report.cpu] = true;
                    received.push(report);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return received,
        }
    }
}

/// Where the time of one VM run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// From the call to the vCPU's first entry: KVM setup, memory, kernel
    /// load, boot state.
    pub setup: Duration,
    /// From the vCPU's first entry to the guest's last exit (for `forkvm -c
    /// poweroff`: the guest kernel's boot to a ready shell, and `poweroff`).
    pub guest: Duration,
    /// From the guest's last exit until everything is released (the host
    /// kernel's VM teardown dominates).
    pub teardown: Duration,
}

/// What [`run_with`] hands its `on_start` callback: the host ends of a VM
/// about to start. It dereferences to the virtio console's [`ConsoleIo`],
/// the part most callers want; clone it to keep it past the callback.
#[derive(Clone)]
pub struct VmHandle {
    console: ConsoleIo,
    exits: ExitCounters,
    kvm_stats: Option<Arc<KvmStats>>,
    tsc_khz: u32,
}

impl VmHandle {
    /// The guest's TSC rate (KVM_GET_TSC_KHZ): what its cycle counts mean.
    pub fn tsc_khz(&self) -> u32 {
        self.tsc_khz
    }

    /// The virtio console's host end.
    pub fn console(&self) -> &ConsoleIo {
        &self.console
    }

    /// The vCPU's exit counters, live for the whole run.
    pub fn exits(&self) -> &ExitCounters {
        &self.exits
    }

    /// KVM's statistics of the vCPU (all exits, also those handled in the
    /// kernel), if the host kernel has them.
    pub fn kvm_stats(&self) -> Option<&Arc<KvmStats>> {
        self.kvm_stats.as_ref()
    }
}

impl std::ops::Deref for VmHandle {
    type Target = ConsoleIo;

    fn deref(&self) -> &ConsoleIo {
        &self.console
    }
}

/// Boots the guest described by `config` and runs it to the end.
pub fn run(config: &VmConfig) -> Result<Outcome> {
    run_timed(config).map(|(outcome, _)| outcome)
}

/// [`run`], also reporting where the time went.
pub fn run_timed(config: &VmConfig) -> Result<(Outcome, Timings)> {
    run_with(config, Box::new(FlushingStdout), |_| {})
}

/// [`run_timed`] for embedders and tests: the serial console's output goes
/// to `serial_out` instead of standard output, and `on_start` gets the
/// VM's [`VmHandle`] before the vCPU starts: the virtio console's host end
/// (clone it to push input later or collect the output after the run; bytes
/// pushed now wait in the device until the guest's driver posts receive
/// buffers) and the vCPU's exit counters.
pub fn run_with(
    config: &VmConfig,
    serial_out: Box<dyn std::io::Write + Send>,
    on_start: impl FnOnce(&VmHandle),
) -> Result<(Outcome, Timings)> {
    let start = Instant::now();
    let vm = builder::Vm::new(config, serial_out)?;
    let exits = ExitCounters::new();
    let kvm_stats = KvmStats::open(&vm.vcpus[0])
        .map_err(|e| log::debug!("no KVM statistics: {e}"))
        .ok()
        .map(Arc::new);
    on_start(&VmHandle {
        console: vm.console_io().clone(),
        exits: exits.clone(),
        kvm_stats: kvm_stats.clone(),
        tsc_khz: vm.tsc_khz,
    });
    log::info!(
        "platform {}, {} MiB, TSC {} kHz, kernel {}",
        vm.platform.name(),
        config.memory >> 20,
        vm.tsc_khz,
        config.kernel.display()
    );

    let interactive = config.script.is_none() && config.console_input;
    let terminal = if interactive {
        RawTerminal::enable().map_err(|e| Error::Io("terminal", e))?
    } else {
        None
    };

    install_kick_handler();
    let stop = Arc::new(AtomicBool::new(false));
    let guest_stopped = EventFd::new(EFD_NONBLOCK).map_err(|e| Error::Io("eventfd", e))?;
    let guest_stopped_signal = guest_stopped
        .try_clone()
        .map_err(|e| Error::Io("eventfd", e))?;
    let (exit_tx, exit_rx) = mpsc::channel();
    let nr_cpus = vm.vcpus.len();
    let per_cpu_exits: Vec<ExitCounters> = if nr_cpus > 1 {
        (0..nr_cpus).map(|_| ExitCounters::new()).collect()
    } else {
        Vec::new()
    };
    let mut vcpu_threads = Vec::with_capacity(nr_cpus);
    for (cpu, mut vcpu_fd) in vm.vcpus.into_iter().enumerate() {
        let context = vcpu::VcpuContext {
            cpu: cpu as u32,
            memory: vm.memory.clone(),
            serial: vm.serial.clone(),
            virtio_console: vm.virtio_console.transport.clone(),
            virtio_console_base: vm.virtio_console.base,
            stop: stop.clone(),
            exits: exits.clone(),
            cpu_exits: per_cpu_exits.get(cpu).cloned(),
        };
        let report_tx = exit_tx.clone();
        let guest_stopped_signal = guest_stopped_signal
            .try_clone()
            .map_err(|e| Error::Io("eventfd", e))?;
        let thread = std::thread::Builder::new()
            .name(format!("vcpu{cpu}"))
            .spawn(move || {
                let entered = Instant::now();
                let exit = vcpu::run(&mut vcpu_fd, &context);
                let _ = report_tx.send(VcpuReport {
                    cpu,
                    exit,
                    entered,
                    exited: Instant::now(),
                });
                let _ = guest_stopped_signal.write(1);
                // The fd (and KVM's vCPU) goes with the thread.
                drop(vcpu_fd);
            });
        match thread {
            Ok(thread) => vcpu_threads.push(thread),
            Err(e) => {
                drop(exit_tx);
                stop_vcpus(&stop, &vcpu_threads, &exit_rx, Vec::new());
                return Err(Error::Io("spawning a vCPU thread", e));
            }
        }
    }
    drop(exit_tx);

    let loop_end = event_loop::run(LoopInputs {
        serial: vm.serial.clone(),
        serial_drained: vm.serial_drained,
        guest_stopped,
        virtio_console: vm.virtio_console.transport.clone(),
        virtio_notify: vm.virtio_console.notify,
        read_stdin: interactive,
        raw_terminal: terminal.is_some(),
        deadline: config.timeout.map(|t| Instant::now() + t),
    });

    // The first vCPU to stop decides how the guest ended; then every
    // other one is stopped and joined.
    let first = exit_rx.try_recv().into_iter().collect();
    let reports = stop_vcpus(&stop, &vcpu_threads, &exit_rx, first);
    for thread in vcpu_threads {
        let _ = thread.join();
    }
    let now = Instant::now();
    let (exit, exited) = reports
        .first()
        .map_or((GuestExit::Stopped, now), |r| (r.exit.clone(), r.exited));
    let entered = reports.iter().map(|r| r.entered).min().unwrap_or(now);
    let kvm_totals = kvm_stats.and_then(|stats| stats.read().ok());
    drop(terminal);
    // Release the VM (and with it KVM's state) before the clock stops.
    let (vm_fd, kvm, memory) = (vm.vm, vm.kvm, vm.memory);
    // The console's transport holds its own handle on guest memory.
    drop(vm.virtio_console.transport);
    drop(vm_fd);
    drop(kvm);
    drop(memory);
    let timings = Timings {
        setup: entered.saturating_duration_since(start),
        guest: exited.saturating_duration_since(entered),
        teardown: exited.elapsed(),
    };
    log::info!(
        "setup {:.3} ms, guest {:.3} ms, teardown {:.3} ms",
        timings.setup.as_secs_f64() * 1e3,
        timings.guest.as_secs_f64() * 1e3,
        timings.teardown.as_secs_f64() * 1e3
    );
    log::info!("vCPU: {}", exits.snapshot());
    for (cpu, own) in per_cpu_exits.iter().enumerate() {
        log::info!("vCPU {cpu}: {}", own.snapshot());
    }
    if let Some(kvm) = kvm_totals {
        let get = |name: &str| kvm.get(name).copied().unwrap_or(0);
        log::info!(
            "KVM: {} exits in all (io {}, mmio {}, halt {}, irq {}, signal {})",
            get("exits"),
            get("io_exits"),
            get("mmio_exits"),
            get("halt_exits"),
            get("irq_exits"),
            get("signal_exits")
        );
    }

    let outcome = match loop_end? {
        LoopEnd::GuestStopped => Outcome::Guest(exit),
        LoopEnd::Timeout => Outcome::Timeout(config.timeout.unwrap_or_default()),
        LoopEnd::Quit => Outcome::Quit,
    };
    Ok((outcome, timings))
}
