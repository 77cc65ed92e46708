//! `forkvm`: boot the forkvm guest kernel to its serial shell.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, ValueEnum};
use vmm::config::{parse_memory_size, PlatformChoice, VmConfig, DEFAULT_KVM_DEVICE};
use vmm::{GuestExit, Outcome};

/// Exit status when forkvm itself fails (bad input, no KVM).
const EXIT_VMM_ERROR: u8 = 1;
/// Exit status when the guest kernel panics.
const EXIT_GUEST_PANIC: u8 = 101;
/// Exit status when the guest crashes (triple fault, KVM failure).
const EXIT_GUEST_CRASH: u8 = 102;
/// Exit status when a Linux guest rebooted (forkvm does not restart it).
const EXIT_GUEST_REBOOT: u8 = 103;
/// Exit status after `--timeout`, as timeout(1).
const EXIT_TIMEOUT: u8 = 124;

#[derive(Parser, Debug)]
#[command(
    name = "forkvm",
    version,
    about = "Boot the forkvm guest kernel under KVM and talk to its shell",
    after_help = "Interactive mode: Ctrl-] quits. Exit status: the guest's `poweroff N` status; \
                  1 forkvm error; 2 bad arguments; 101 guest kernel panic; 102 guest crash; 103 a Linux \
                  guest rebooted (also after its panic); 124 timeout. A Linux bzImage given to --kernel \
                  boots with its console on the serial port (the kernel log with -v); its power-off \
                  is status 0.\n\n\
                  Example: forkvm -c 'echo hello; bench fork --iters 100'   (prints hello and a fork \
                  benchmark, exits 0)"
)]
struct Cli {
    /// Run these shell commands (separated by ';' or newlines) instead of the
    /// interactive prompt; exit with the last command's status.
    #[arg(short = 'c', long = "command", value_name = "COMMANDS")]
    command: Option<String>,

    /// Guest kernel: forkvm's ELF (default: the kernel built with this
    /// forkvm) or a Linux bzImage (not on a PVM host).
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,

    /// More of a Linux kernel's command line (with a bzImage --kernel).
    #[arg(long, value_name = "CMDLINE", requires = "kernel")]
    append: Option<String>,

    /// Guest memory, e.g. 64M, 256M, 1G.
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_memory)]
    mem: u64,

    /// Stop the guest after this many seconds (exit status 124).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<Duration>,

    /// How the guest kernel executes: auto-detect, ordinary hardware
    /// virtualisation, or the PVM host's native mode.
    #[arg(long, value_enum, default_value_t = PlatformArg::Auto)]
    platform: PlatformArg,

    /// KVM device node.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_KVM_DEVICE)]
    kvm_device: PathBuf,

    /// Initramfs: a cpio archive (newc format, plain or gzip-compressed)
    /// unpacked into the guest's root file system at boot.
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,

    /// The first program (pid 1), a path in the guest's file system, e.g.
    /// /bin/busybox (default: the built-in init and its shell). Its
    /// arguments follow `--`.
    #[arg(long, value_name = "PATH", conflicts_with = "command")]
    init: Option<String>,

    /// Arguments for --init's program (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    init_args: Vec<String>,

    /// Number of vCPUs (1 to the host's CPU count).
    #[arg(long, value_name = "N", default_value_t = 1)]
    cpus: u32,

    /// Log VMM events to stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PlatformArg {
    Auto,
    Hvm,
    Pvm,
}

fn parse_memory(text: &str) -> Result<u64, String> {
    parse_memory_size(text).map_err(|e| e.to_string())
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 1e6) {
        return Err(format!(
            "'{text}': the timeout must be between 0 and 1000000 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.init.is_none() && !cli.init_args.is_empty() {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "arguments after -- are for --init's program: give --init PATH",
            )
            .exit();
    }
    init_logging(cli.verbose);

    let mut config = VmConfig::new(
        cli.kernel
            .unwrap_or_else(|| PathBuf::from(vmm::BUILT_KERNEL)),
    );
    config.memory = cli.mem;
    config.script = cli.command;
    config.timeout = cli.timeout;
    config.kvm_device = cli.kvm_device;
    config.initrd = cli.initrd;
    config.cpus = cli.cpus;
    config.append = cli.append;
    config.init = cli.init.map(|path| {
        let mut argv = vec![path];
        argv.extend(cli.init_args);
        argv
    });
    config.platform = match cli.platform {
        PlatformArg::Auto => PlatformChoice::Auto,
        PlatformArg::Hvm => PlatformChoice::Hvm,
        PlatformArg::Pvm => PlatformChoice::Pvm,
    };

    match vmm::run(&config) {
        Ok(outcome) => ExitCode::from(report(&outcome)),
        Err(e) => {
            eprintln!("forkvm: {e}");
            ExitCode::from(EXIT_VMM_ERROR)
        }
    }
}

/// Prints what the user needs to know about how the guest ended and
/// returns forkvm's exit status.
fn report(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Guest(GuestExit::Poweroff(status)) => (*status & 0xff) as u8,
        Outcome::Guest(GuestExit::Reboot) => {
            eprintln!("forkvm: the Linux guest rebooted (or panicked); forkvm does not restart it");
            EXIT_GUEST_REBOOT
        }
        Outcome::Guest(GuestExit::Panic { message, cpu }) => {
            eprintln!("forkvm: guest kernel panic: {message} (on CPU {cpu})");
            EXIT_GUEST_PANIC
        }
        Outcome::Guest(GuestExit::BootFailed(message)) => {
            eprintln!("forkvm: the guest cannot boot: {message}");
            EXIT_VMM_ERROR
        }
        Outcome::Guest(GuestExit::TripleFault { rip }) => {
            eprintln!("forkvm: the guest triple-faulted (vCPU shutdown) at rip {rip:#x}");
            EXIT_GUEST_CRASH
        }
        Outcome::Guest(GuestExit::InternalError { detail, rip })
        | Outcome::Guest(GuestExit::Unexpected { detail, rip }) => {
            eprintln!("forkvm: guest crashed: {detail} (rip {rip:#x})");
            EXIT_GUEST_CRASH
        }
        Outcome::Guest(GuestExit::Stopped) => {
            eprintln!("forkvm: the guest was stopped");
            EXIT_GUEST_CRASH
        }
        Outcome::Timeout(after) => {
            eprintln!(
                "forkvm: timed out after {:.1} s; the guest was stopped",
                after.as_secs_f64()
            );
            EXIT_TIMEOUT
        }
        Outcome::Quit => 0,
    }
}

fn init_logging(verbose: u8) {
    struct StderrLogger;
    impl log::Log for StderrLogger {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            eprint!(
                "forkvm: {}: {}\r\n",
                record.level().as_str().to_lowercase(),
                record.args()
            );
        }
        fn flush(&self) {}
    }
    static LOGGER: StderrLogger = StderrLogger;
    let level = match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
