//! The fair class's behaviour (EEVDF with Linux's nice-to-weight table):
//! CPU shares between nice levels and against a fork loop, measured by the
//! spinners' CPU time in `wait4`'s rusage over a bounded run on one CPU
//! (`spin share`, `spin forkloop` pin themselves). Shares are behaviour,
//! checked with a generous tolerance; no timing is a pass/fail criterion.

mod common;

use common::field;

/// Runs `spin share MS NICE...` and returns each spinner's per-mille
/// share of the CPU the spinners got, in the order of `nices`.
fn shares(ms: u32, nices: &[i32]) -> Vec<u64> {
    let nice_args: Vec<String> = nices.iter().map(i32::to_string).collect();
    let script = format!("run spin share {ms} {}", nice_args.join(" "));
    let text = common::run_expect_within(&script, 0, 120, &[]);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("spin share: nice "))
        .collect();
    assert_eq!(lines.len(), nices.len(), "{text}");
    for (line, nice) in lines.iter().zip(nices) {
        assert!(
            line.starts_with(&format!("spin share: nice {nice} ")),
            "{text}"
        );
        assert!(field(line, "cpu_us ") > 0, "every spinner ran: {text}");
    }
    lines.iter().map(|l| field(l, "permille ")).collect()
}

/// Nice 19 against nice 0: weights 15 and 1024, so ~1.4% for the nice 19
/// spinner (a round robin gives it 50%).
#[test]
fn nice_19_gets_a_sliver_against_nice_0() {
    require_kvm!();
    let got = shares(2000, &[0, 19]);
    assert!(got[0] > 850, "nice 0 got {} per mille", got[0]);
    assert!(got[1] < 60, "nice 19 got {} per mille", got[1]);
}

/// Nice 0 against nice 5: weights 1024 and 335, so 753:247 per mille.
#[test]
fn nice_5_gets_its_weight_against_nice_0() {
    require_kvm!();
    let got = shares(2000, &[0, 5]);
    assert!((650..=850).contains(&got[0]), "nice 0: {got:?}");
    assert!((150..=350).contains(&got[1]), "nice 5: {got:?}");
}

/// Equal nice values share equally.
#[test]
fn equal_nice_values_share_equally() {
    require_kvm!();
    let got = shares(1500, &[3, 3, 3]);
    for share in &got {
        assert!((230..=430).contains(share), "{got:?}");
    }
}

/// A process that forks children (which exit at once) as fast as it can
/// does not starve a spinner on the same CPU: new tasks start at the
/// queue's average virtual time, not before the spinner. The spinner gets
/// about half (the forking parent is the other nice 0 task).
#[test]
fn fork_loop_does_not_starve_a_spinner() {
    require_kvm!();
    let text = common::run_expect_within("run spin forkloop 2000", 0, 120, &[]);
    let line = text
        .lines()
        .find(|l| l.starts_with("spin forkloop: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(field(line, "forks ") > 10, "the loop forked: {line}");
    let share = field(line, "permille ");
    assert!((250..=800).contains(&share), "spinner share: {line}");
}

/// `kernel.sched_child_runs_first=1`: the new child is the fair class's
/// next buddy and preempts its parent, so on one CPU the child has run (it
/// marks a shared page first thing) before `fork` returns in the parent
/// (with 0, EEVDF alone decides, and a parent inside its slice usually
/// goes on first). Not "has exited": under nested emulation the child's
/// exit outlasted its slice once and the parent went on.
#[test]
fn sched_child_runs_first_runs_the_child_first() {
    require_kvm!();
    let text = common::run_expect_within(
        "sysctl kernel.sched_child_runs_first=1; run spin childfirst; run spin childfirst; \
         run spin childfirst",
        0,
        120,
        &[],
    );
    let answers: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("spin childfirst: "))
        .collect();
    assert_eq!(answers.len(), 3, "{text}");
    for answer in answers {
        assert!(answer.ends_with("ran before fork returned: yes"), "{text}");
    }
}
