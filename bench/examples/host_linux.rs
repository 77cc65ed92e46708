//! Prints the host-Linux reference medians (and min/p90/max) of every
//! operation: `cargo run --release -p bench --example host_linux [iters]`.

use bench::host_linux::{self, BenchOp, Params, Summary};

fn main() {
    let iters = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let clock = host_linux::host_clock();
    let khz = clock.khz();
    println!(
        "{} at {khz} kHz; {iters} iterations, 100 warm-up",
        clock.name()
    );
    for op in BenchOp::ALL {
        let name = host_linux::op_name(op);
        let params = Params {
            iters,
            warmup: 100,
            mem_mib: 16,
        };
        let result = match host_linux::run(op, params) {
            Ok(result) => result,
            Err(e) => {
                println!("{name:20} {e}");
                continue;
            }
        };
        for &metric in host_linux::metrics(op) {
            let Some(s) = result.samples(metric).and_then(Summary::of) else {
                continue;
            };
            let ns = |c: u64| host_linux::cycles_to_duration(c, khz).as_nanos();
            println!(
                "{name:20} {:17} median {:>9} ticks {:>8} ns  (min {} p90 {} max {} ns)",
                metric.name(),
                s.median,
                ns(s.median),
                ns(s.min),
                ns(s.p90),
                ns(s.max)
            );
        }
        if let Some(note) = &result.note {
            println!("{name:20} note: {note}");
        }
    }
}
