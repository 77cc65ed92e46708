//! The lines the shell (`sh`) prints for its reports, as `Display` values
//! (no heap, no system calls). The formats are those of the kernel's
//! original built-in shell, which the integration tests parse.

use core::fmt;

use forkvm_abi::sys::{SystemInfo, TaskInfo, TickReport};
use forkvm_abi::Platform;

use crate::errno::Errno;
use crate::forkvm::{comm, cycles_to_ns};
use crate::shell_parse::{ErrName, COMMANDS};
use crate::stats::Summary;

/// `help`: one `  USAGE            HELP` line per visible command.
pub struct Help;

impl fmt::Display for Help {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for command in COMMANDS.iter().filter(|c| !c.hidden) {
            writeln!(f, "  {:<16} {}", command.usage, command.help)?;
        }
        Ok(())
    }
}

/// The greeting of an interactive shell.
pub struct Banner<'a>(pub &'a SystemInfo);

impl fmt::Display for Banner<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.0;
        let platform = Platform::from_raw(info.platform).map_or("unknown", Platform::name);
        write!(
            f,
            "forkvm guest kernel: platform {platform}, {} MiB, TSC {} kHz, booted in {} us. Type 'help'.",
            (info.total_frames * 4096) >> 20,
            info.tsc_khz,
            info.uptime_ns / 1000
        )
    }
}

/// `meminfo`.
pub struct Meminfo<'a>(pub &'a SystemInfo);

impl fmt::Display for Meminfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = self.0;
        let (total, free) = (i.total_frames, i.free_frames);
        write!(
            f,
            "frames: total={total} free={free} used={} ({} KiB free of {} KiB); heap: used={} size={}; \
             cached kernel stacks: {}; pooled page tables: {}",
            total.saturating_sub(free),
            free * 4,
            total * 4,
            i.heap_used,
            i.heap_size,
            i.cached_kernel_stacks,
            i.pooled_page_tables
        )
    }
}

/// `uptime`.
pub struct Uptime<'a>(pub &'a SystemInfo);

impl fmt::Display for Uptime<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = self.0;
        write!(
            f,
            "up {}.{:06} s, {} ticks at {} Hz, {} context switches",
            i.uptime_ns / 1_000_000_000,
            i.uptime_ns % 1_000_000_000 / 1000,
            i.ticks,
            i.tick_hz,
            i.context_switches
        )
    }
}

/// The name of [`TickReport::timer_mode`].
pub fn timer_mode_name(mode: u32) -> &'static str {
    match mode {
        0 => "tsc-deadline",
        1 => "periodic",
        _ => "unknown",
    }
}

/// `ticks [MS]`.
pub struct Ticks<'a>(pub &'a TickReport);

impl fmt::Display for Ticks<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        let us = |ns: u64| ns as f64 / 1000.0;
        write!(
            f,
            "ticks over {} ms (expected {} at {} Hz, {} timer): kernel-busy={} idle={} user={}; \
             cost per tick: kernel {:.1} us, user {:.1} us",
            r.window_ms,
            r.expected,
            r.tick_hz,
            timer_mode_name(r.timer_mode),
            r.kernel_busy,
            r.idle,
            r.user,
            us(r.kernel_cost_ns),
            us(r.user_cost_ns)
        )
    }
}

/// The header line of `ps`.
pub struct PsHeader;

impl fmt::Display for PsHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>5} {:>5} {:>5} {:>4} {:>2} {:>3} {:>3} {:>8} {:>3} {:>9} COMMAND",
            "PID", "PPID", "TGID", "UID", "S", "CLS", "NI", "VSZ_KB", "PSR", "TIME"
        )
    }
}

/// `ps`'s name of a scheduling policy (its CLS column).
pub fn policy_class(policy: u32) -> &'static str {
    match policy {
        0 => "TS",
        1 => "FF",
        2 => "RR",
        3 => "B",
        5 => "IDL",
        6 => "DLN",
        _ => "?",
    }
}

/// One task's line of `ps`: its CPU time (user + system) in seconds.
pub struct PsRow<'a>(pub &'a TaskInfo);

impl fmt::Display for PsRow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        let name = core::str::from_utf8(comm(t)).unwrap_or("?");
        let ms = t.cpu_ns / 1_000_000;
        write!(
            f,
            "{:>5} {:>5} {:>5} {:>4} {:>2} {:>3} {:>3} {:>8} {:>3} {:>5}.{:03} {name}",
            t.pid,
            t.ppid,
            t.tgid,
            t.uid,
            char::from(t.state),
            policy_class(t.policy),
            t.nice,
            t.vsz_kb,
            t.cpu,
            ms / 1000,
            ms % 1000,
        )
    }
}

/// `sysprobe [N]`: `total_cycles` for `iterations` calls, in microseconds
/// per call if the TSC rate is known, else in cycles.
pub struct Sysprobe {
    /// Calls made.
    pub iterations: u64,
    /// TSC cycles they took in all.
    pub total_cycles: u64,
    /// TSC rate, if known.
    pub tsc_khz: Option<u64>,
}

impl fmt::Display for Sysprobe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_call = self.total_cycles / self.iterations.max(1);
        let n = self.iterations;
        match self.tsc_khz.and_then(|khz| cycles_to_ns(per_call, khz)) {
            Some(ns) => write!(
                f,
                "sysprobe: {n} getpid calls from user mode, {}.{:03} us each",
                ns / 1000,
                ns % 1000
            ),
            None => write!(
                f,
                "sysprobe: {n} getpid calls from user mode, {per_call} cycles each"
            ),
        }
    }
}

/// `bench OP ...`: the summary in nanoseconds if the TSC rate is known,
/// else in cycles (the format of `lat_proc`).
pub struct Bench<'a> {
    /// Operation name.
    pub op: &'a str,
    /// Measured cycles.
    pub iters: usize,
    /// The samples, in TSC cycles.
    pub cycles: Summary,
    /// TSC rate, if known.
    pub tsc_khz: Option<u64>,
}

impl fmt::Display for Bench<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.cycles;
        let (unit, [min, median, p90, max]) = match self.tsc_khz.filter(|&khz| khz > 0) {
            Some(khz) => (
                "ns",
                [s.min, s.median, s.p90, s.max].map(|c| cycles_to_ns(c, khz).unwrap_or(0)),
            ),
            None => ("cycles", [s.min, s.median, s.p90, s.max]),
        };
        write!(
            f,
            "bench {} iters={} min_{unit}={min} median_{unit}={median} p90_{unit}={p90} max_{unit}={max}",
            self.op, self.iters
        )
    }
}

/// A failed system call of a builtin: `CMD: CALL: ENAME`, with a hint when
/// the call does not exist (`ENOSYS`: not the forkvm kernel).
pub struct SysFailure<'a> {
    /// The builtin.
    pub command: &'a str,
    /// The system call.
    pub call: &'a str,
    /// How it failed.
    pub errno: Errno,
}

impl fmt::Display for SysFailure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.command,
            self.call,
            ErrName(self.errno)
        )?;
        if self.errno == Errno::ENOSYS {
            f.write_str(" (not available: this kernel is not forkvm's)")?;
        }
        Ok(())
    }
}

/// A failed system call of `su`/`ulimit`/`id`/`forkbomb`, with the errno's
/// name and number: `su: setuid: EPERM 1`, `ulimit: -u: EINVAL 22`.
pub struct CallFailure<'a> {
    /// The builtin.
    pub command: &'a str,
    /// The system call (or option).
    pub call: &'a str,
    /// How it failed.
    pub errno: Errno,
}

impl fmt::Display for CallFailure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.command, self.call, self.errno)
    }
}

/// `id`: `uid=U euid=E gid=G egid=H caps=0x<effective set in hex>`.
#[derive(Clone, Copy, Debug)]
pub struct IdLine {
    /// Real user id.
    pub uid: u32,
    /// Effective user id.
    pub euid: u32,
    /// Real group id.
    pub gid: u32,
    /// Effective group id.
    pub egid: u32,
    /// Effective capabilities (bit N = capability N).
    pub caps: u64,
}

impl fmt::Display for IdLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "uid={} euid={} gid={} egid={} caps={:#x}",
            self.uid, self.euid, self.gid, self.egid, self.caps
        )
    }
}

/// A resource limit as `ulimit` prints it: the number, or `unlimited` for
/// `RLIM_INFINITY`.
#[derive(Clone, Copy, Debug)]
pub struct LimitValue(pub u64);

impl fmt::Display for LimitValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == u64::MAX {
            f.write_str("unlimited")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// `forkbomb [MAX]`: `forkbomb: N forks, stopped by ENAME N` or
/// `forkbomb: N forks, reached the limit`.
#[derive(Clone, Copy, Debug)]
pub struct Forkbomb {
    /// Children forked.
    pub forks: u64,
    /// The `fork` failure that stopped it, if it did not reach MAX.
    pub stopped_by: Option<Errno>,
}

impl fmt::Display for Forkbomb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "forkbomb: {} forks, ", self.forks)?;
        match self.stopped_by {
            Some(e) => write!(f, "stopped by {e}"),
            None => f.write_str("reached the limit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system_info() -> SystemInfo {
        SystemInfo {
            tsc_khz: 2_000_000,
            platform: 0,
            tick_hz: 100,
            total_frames: 16_000,
            free_frames: 15_000,
            heap_used: 1234,
            heap_size: 4_194_304,
            cached_kernel_stacks: 3,
            pooled_page_tables: 0,
            tasks: 2,
            uptime_ns: 1_234_567_890,
            ticks: 123,
            context_switches: 456,
        }
    }

    #[test]
    fn help_lists_visible_commands() {
        let text = Help.to_string();
        assert!(text.starts_with("  help             list the commands\n"));
        assert!(text.contains("\n  echo [WORD...]   print the words\n"));
        assert!(text.contains(
            "\n  run PROG [ARGS...] run a user program and wait for it; prints how it ended\n"
        ));
        assert!(text.contains("\n  ticks [MS]       "));
        assert!(text.contains("\n  poweroff [N]     "));
        assert!(text.contains("\n  bench OP [--iters N] [--mem MIB] "));
        assert!(!text.contains("  panic") && !text.contains("  fault "));
        assert!(text.contains("\n  su UID [COMMAND...] run COMMAND"));
        assert!(text.contains("\n  id               print"));
        assert!(text.contains("\n  devices          the devices"));
        assert!(text.contains("\n  vconsole-echo N  read N bytes"));
        assert!(text.contains("\n  cd [DIR]         change the working directory"));
        assert!(text.contains("\n  affinity MASK COMMAND... run"));
        assert_eq!(text.lines().count(), 33);
    }

    #[test]
    fn banner() {
        assert_eq!(
            Banner(&system_info()).to_string(),
            "forkvm guest kernel: platform hvm, 62 MiB, TSC 2000000 kHz, booted in 1234567 us. Type 'help'."
        );
    }

    #[test]
    fn meminfo_line() {
        assert_eq!(
            Meminfo(&system_info()).to_string(),
            "frames: total=16000 free=15000 used=1000 (60000 KiB free of 64000 KiB); \
             heap: used=1234 size=4194304; cached kernel stacks: 3; pooled page tables: 0"
        );
    }

    #[test]
    fn uptime_line() {
        assert_eq!(
            Uptime(&system_info()).to_string(),
            "up 1.234567 s, 123 ticks at 100 Hz, 456 context switches"
        );
        let mut info = system_info();
        info.uptime_ns = 5_000;
        assert!(Uptime(&info).to_string().starts_with("up 0.000005 s,"));
    }

    #[test]
    fn ticks_line() {
        let report = TickReport {
            window_ms: 100,
            expected: 10,
            kernel_busy: 10,
            idle: 9,
            user: 11,
            kernel_cost_ns: 1_260,
            user_cost_ns: 34_049,
            timer_mode: 0,
            tick_hz: 100,
        };
        assert_eq!(
            Ticks(&report).to_string(),
            "ticks over 100 ms (expected 10 at 100 Hz, tsc-deadline timer): kernel-busy=10 idle=9 user=11; \
             cost per tick: kernel 1.3 us, user 34.0 us"
        );
        assert_eq!(timer_mode_name(1), "periodic");
    }

    #[test]
    fn ps_lines() {
        assert_eq!(
            PsHeader.to_string(),
            "  PID  PPID  TGID  UID  S CLS  NI   VSZ_KB PSR      TIME COMMAND"
        );
        let mut task = TaskInfo {
            pid: 12,
            ppid: 1,
            tgid: 12,
            uid: 0,
            state: b'R',
            vsz_kb: 2048,
            fds: 3,
            policy: 2,
            nice: -5,
            cpu_ns: 1_234_567_890,
            cpu: 1,
            ..TaskInfo::default()
        };
        task.comm[..4].copy_from_slice(b"spin");
        assert_eq!(
            PsRow(&task).to_string(),
            "   12     1    12    0  R  RR  -5     2048   1     1.234 spin"
        );
        task.comm = [0xff; 16];
        assert!(PsRow(&task).to_string().ends_with(" ?"));
    }

    #[test]
    fn sysprobe_line() {
        let probe = Sysprobe {
            iterations: 1000,
            total_cycles: 2_000_000,
            tsc_khz: Some(2_000_000),
        };
        assert_eq!(
            probe.to_string(),
            "sysprobe: 1000 getpid calls from user mode, 1.000 us each"
        );
        let probe = Sysprobe {
            iterations: 10,
            total_cycles: 1234,
            tsc_khz: Some(1_000_000),
        };
        assert_eq!(
            probe.to_string(),
            "sysprobe: 10 getpid calls from user mode, 0.123 us each"
        );
        let probe = Sysprobe {
            iterations: 10,
            total_cycles: 1234,
            tsc_khz: None,
        };
        assert_eq!(
            probe.to_string(),
            "sysprobe: 10 getpid calls from user mode, 123 cycles each"
        );
    }

    #[test]
    fn bench_lines() {
        let cycles = Summary {
            min: 2000,
            median: 3000,
            p90: 4000,
            max: 10_000,
        };
        let line = |tsc_khz| {
            Bench {
                op: "fork",
                iters: 20,
                cycles,
                tsc_khz,
            }
            .to_string()
        };
        assert_eq!(
            line(Some(2_000_000)),
            "bench fork iters=20 min_ns=1000 median_ns=1500 p90_ns=2000 max_ns=5000"
        );
        assert_eq!(
            line(None),
            "bench fork iters=20 min_cycles=2000 median_cycles=3000 p90_cycles=4000 max_cycles=10000"
        );
        assert_eq!(line(Some(0)), line(None));
    }

    #[test]
    fn credential_and_limit_lines() {
        let id = IdLine {
            uid: 0,
            euid: 0,
            gid: 0,
            egid: 0,
            caps: 0x1ff_ffff_ffff,
        };
        assert_eq!(
            id.to_string(),
            "uid=0 euid=0 gid=0 egid=0 caps=0x1ffffffffff"
        );
        let id = IdLine {
            uid: 65534,
            euid: 65534,
            gid: 65534,
            egid: 65534,
            caps: 0,
        };
        assert_eq!(
            id.to_string(),
            "uid=65534 euid=65534 gid=65534 egid=65534 caps=0x0"
        );
        assert_eq!(LimitValue(u64::MAX).to_string(), "unlimited");
        assert_eq!(LimitValue(96365).to_string(), "96365");
        let f = CallFailure {
            command: "su",
            call: "setuid",
            errno: Errno::EPERM,
        };
        assert_eq!(f.to_string(), "su: setuid: EPERM 1");
        let f = CallFailure {
            command: "ulimit",
            call: "-u",
            errno: Errno::EINVAL,
        };
        assert_eq!(f.to_string(), "ulimit: -u: EINVAL 22");
        let bomb = Forkbomb {
            forks: 19,
            stopped_by: Some(Errno::EAGAIN),
        };
        assert_eq!(bomb.to_string(), "forkbomb: 19 forks, stopped by EAGAIN 11");
        let bomb = Forkbomb {
            forks: 50,
            stopped_by: None,
        };
        assert_eq!(bomb.to_string(), "forkbomb: 50 forks, reached the limit");
    }

    #[test]
    fn failures() {
        let f = SysFailure {
            command: "meminfo",
            call: "forkvm_info",
            errno: Errno::ENOSYS,
        };
        assert_eq!(
            f.to_string(),
            "meminfo: forkvm_info: ENOSYS (not available: this kernel is not forkvm's)"
        );
        let f = SysFailure {
            command: "poweroff",
            call: "reboot",
            errno: Errno::EPERM,
        };
        assert_eq!(f.to_string(), "poweroff: reboot: EPERM");
    }
}
