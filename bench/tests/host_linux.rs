//! The host-Linux reference runs every operation natively: right sample
//! counts, N/A where the host must not run an operation. Timings are not
//! checked: they are measurements, not pass/fail criteria.

use bench::host_linux::{self, BenchOp, HostError, Metric, Params, Summary};

const ITERS: usize = 20;

fn params(mem_mib: usize) -> Params {
    Params {
        iters: ITERS,
        warmup: 3,
        mem_mib,
    }
}

fn check_samples(op: BenchOp, mem_mib: usize) {
    let result = host_linux::run(op, params(mem_mib)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.op, op);
    for metric in Metric::ALL {
        let expected = host_linux::metrics(op).contains(&metric);
        let samples = result.samples(metric);
        assert_eq!(samples.is_some(), expected, "{op:?} {metric:?}");
        if let Some(samples) = samples {
            assert_eq!(samples.len(), ITERS, "{op:?} {metric:?}");
            assert!(
                samples.iter().all(|&s| s > 0),
                "{op:?} {metric:?}: {samples:?}"
            );
        }
    }
    if let (Some(create), Some(reap)) = (
        result.samples(Metric::Create),
        result.samples(Metric::CreateExitReap),
    ) {
        // Each iteration's create is a prefix of its create+exit+reap.
        assert!(create.iter().zip(reap).all(|(c, r)| c <= r), "{op:?}");
        let (c, r) = (Summary::of(create).unwrap(), Summary::of(reap).unwrap());
        assert!(c.median <= r.median, "{op:?}: {c:?} {r:?}");
    }
}

#[test]
fn fork() {
    check_samples(BenchOp::Fork, 0);
}

/// The parent forks while its busy threads run; they are joined after.
#[test]
fn fork_threaded() {
    check_samples(BenchOp::ForkThreaded, 0);
    let result = host_linux::run(BenchOp::ForkThreaded, params(0)).unwrap();
    let note = result.note.expect("how the threads ran");
    assert!(note.contains("2 busy threads"), "{note}");
}

#[test]
fn yield_pingpong() {
    check_samples(BenchOp::YieldPingPong, 0);
}

#[test]
fn pipe_pingpong() {
    check_samples(BenchOp::PipePingPong, 0);
}

#[test]
fn vfork() {
    check_samples(BenchOp::Vfork, 0);
}

#[test]
fn clone_thread() {
    check_samples(BenchOp::CloneThread, 0);
}

#[test]
fn clone_vm() {
    check_samples(BenchOp::CloneVm, 0);
}

#[test]
fn fork_exec() {
    check_samples(BenchOp::ForkExec, 0);
    let note = host_linux::run(BenchOp::ForkExec, params(0))
        .unwrap()
        .note
        .unwrap();
    assert!(note.contains("/true"), "{note}");
}

#[test]
fn fork_mem_16_mib() {
    check_samples(BenchOp::ForkMem, 16);
}

#[test]
fn clone_einval() {
    check_samples(BenchOp::CloneEinval, 0);
}

#[test]
fn rlimit_eagain_or_not_applicable() {
    match host_linux::run(BenchOp::RlimitEagain, params(0)) {
        Ok(_) => check_samples(BenchOp::RlimitEagain, 0),
        Err(e @ HostError::NotApplicable { .. }) => {
            eprintln!("{e}");
            assert!(!e.to_string().is_empty());
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn rlimit_eagain_runs_as_root() {
    // SAFETY: geteuid has no side effects and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        check_samples(BenchOp::RlimitEagain, 0);
    }
}

#[test]
fn max_threads_is_not_applicable() {
    let err = host_linux::run(BenchOp::MaxThreadsEagain, params(0)).unwrap_err();
    assert!(err.is_not_applicable());
    let text = err.to_string();
    assert!(text.contains("max_threads_eagain"), "{text}");
    assert!(text.contains("threads-max"), "{text}");
}

#[test]
fn zero_iterations_give_empty_samples() {
    let p = Params {
        iters: 0,
        warmup: 0,
        mem_mib: 0,
    };
    let result = host_linux::run(BenchOp::Fork, p).unwrap();
    assert_eq!(result.create.as_deref(), Some(&[][..]));
}

#[test]
fn syscall_error_names_op_syscall_and_errno() {
    let err = HostError::Syscall {
        op: BenchOp::Vfork,
        syscall: "clone",
        error: std::io::Error::from_raw_os_error(libc::EAGAIN),
    };
    let text = err.to_string();
    assert!(text.starts_with("vfork: clone failed: "), "{text}");
    assert!(text.contains("os error 11"), "{text}");
}
