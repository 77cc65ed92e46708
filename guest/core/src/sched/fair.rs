//! The fair class's run queue: EEVDF ("Earliest Eligible Virtual Deadline
//! First", Linux 6.6+ `kernel/sched/fair.c`) with Linux's nice-to-weight
//! table. Pure logic: the kernel (`guest/src/sched/fair.rs`) feeds it the
//! CPU time each task ran and acts on its answers.
//!
//! Every entity has a weight (from its nice value), a virtual runtime
//! (`vruntime`: real runtime scaled by `NICE_0_LOAD / weight`) and a
//! virtual deadline (`vruntime + slice * NICE_0_LOAD / weight`). The queue
//! keeps the weighted average of its entities' vruntimes (`avg_vruntime`,
//! the running entity's included): an entity whose vruntime is at or
//! below the average has received no more than its share ("eligible").
//! The pick is the eligible entity with the earliest deadline, so a task
//! gets CPU time in proportion to its weight and a short slice gets the
//! CPU sooner.
//!
//! Placement (`place_entity`): an entity joins a queue at the queue's
//! average minus its *lag* (`vlag = avg - vruntime` when it left: what it
//! was owed, positive, or had taken too much, negative, clamped to about
//! two slices). A new task has no lag, so a fork loop cannot start its
//! children ahead of the tasks already there; a task that sleeps keeps its
//! lag; a task that moves to another CPU keeps its lag against the new
//! queue's average (its vruntime is renormalised). A new task's first
//! deadline is half a slice away (Linux `PLACE_DEADLINE_INITIAL`).
//!
//! The running entity keeps the CPU until its slice is used up (its
//! vruntime reached its deadline, Linux `RUN_TO_PARITY`): until then a
//! woken task does not preempt it.
//!
//! The entities wait in an unsorted `Vec` and the pick scans it: the
//! common case is 1-3 runnable tasks per CPU (fork and ping-pong loops),
//! where a scan beats any tree; a fork bomb with a thousand queued tasks
//! costs ~a microsecond per pick, below one trap to the hypervisor here.
//! A pick, and an enqueue's preemption check, are one scan; the average is
//! kept incrementally (Linux's `avg_vruntime`/`avg_load` sums), so placing
//! and charging are O(1).
//!
//! `sched_yield` forfeits the rest of the slice: an eligible yielder's
//! vruntime moves to its deadline (Linux 6.18) and its deadline one slice
//! on.

use alloc::vec::Vec;

/// The weight of a nice 0 task (Linux `NICE_0_LOAD` without the 10 bits
/// of extra resolution 64-bit Linux adds).
pub const NICE_0_LOAD: u64 = 1024;

/// Linux `sched_prio_to_weight`: nice -20..19. Each step is ~1.25x, so a
/// task one nice level lower gets ~10% more CPU than its peer.
pub const SCHED_PRIO_TO_WEIGHT: [u64; 40] = [
    88761, 71755, 56483, 46273, 36291, // -20 .. -16
    29154, 23254, 18705, 14949, 11916, // -15 .. -11
    9548, 7620, 6100, 4904, 3906, // -10 .. -6
    3121, 2501, 1991, 1586, 1277, // -5 .. -1
    1024, 820, 655, 526, 423, // 0 .. 4
    335, 272, 215, 172, 137, // 5 .. 9
    110, 87, 70, 56, 45, // 10 .. 14
    36, 29, 23, 18, 15, // 15 .. 19
];

/// The weight of a SCHED_IDLE task (Linux `WEIGHT_IDLEPRIO`).
pub const WEIGHT_IDLEPRIO: u64 = 3;

/// The weight of nice value `nice` (-20..19, clamped).
pub fn nice_to_weight(nice: i32) -> u64 {
    SCHED_PRIO_TO_WEIGHT[(nice.clamp(-20, 19) + 20) as usize]
}

/// `delta` of real time as virtual time of an entity of `weight` (Linux
/// `calc_delta_fair`).
pub fn calc_delta_fair(delta: u64, weight: u64) -> i64 {
    if weight == NICE_0_LOAD {
        return delta as i64;
    }
    (u128::from(delta) * u128::from(NICE_0_LOAD) / u128::from(weight.max(1))) as i64
}

/// What the fair class knows of a task while it is runnable (the fair
/// part of Linux's `sched_entity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entity {
    pub weight: u64,
    /// The slice it asks for, in ns (`se->slice`).
    pub slice: u64,
    pub vruntime: i64,
    pub deadline: i64,
}

impl Entity {
    /// The slice in virtual time.
    fn vslice(&self) -> i64 {
        calc_delta_fair(self.slice, self.weight)
    }
}

/// A task leaving a queue, with the lag it takes along (`se->vlag`).
#[derive(Debug)]
pub struct Left<T> {
    pub task: T,
    pub vlag: i64,
    /// Its vruntime on the queue it left.
    pub vruntime: i64,
}

/// How an entity joins a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// A new task (`ENQUEUE_INITIAL`): no lag, first deadline half a
    /// slice away.
    New,
    /// A woken, migrated or re-weighted task with the lag it left with.
    Lag(i64),
}

/// One CPU's fair run queue (Linux `cfs_rq`). `T` is the kernel's task
/// handle; `same` closures tell the kernel's handles apart.
pub struct FairQueue<T> {
    /// Runnable entities but the running one.
    queued: Vec<(Entity, T)>,
    /// The running entity, if the CPU runs a fair task.
    curr: Option<(Entity, T)>,
    /// Whether `curr` still has the slice it was picked with (Linux's
    /// `RUN_TO_PARITY` mark `vlag == deadline`).
    curr_protected: bool,
    /// The vruntime keys are relative to (Linux `min_vruntime`, here moved
    /// to the average at every update so the keys stay small).
    zero_vruntime: i64,
    /// Sum of `weight * (vruntime - zero_vruntime)` and of the weights of
    /// the queued entities (Linux `avg_vruntime`, `avg_load`).
    sum_w_key: i128,
    sum_weight: u64,
    /// An entity to pick next if it is eligible (Linux's next buddy:
    /// `sched_child_runs_first`).
    next_buddy: bool,
    /// The floor of the lag limit (Linux `TICK_NSEC`).
    tick_ns: u64,
}

impl<T> FairQueue<T> {
    /// An empty queue on a CPU whose tick is `tick_ns` long.
    pub const fn new(tick_ns: u64) -> FairQueue<T> {
        FairQueue {
            queued: Vec::new(),
            curr: None,
            curr_protected: false,
            zero_vruntime: 0,
            sum_w_key: 0,
            sum_weight: 0,
            next_buddy: false,
            tick_ns,
        }
    }

    /// Queued entities (the running one not counted).
    pub fn nr_queued(&self) -> usize {
        self.queued.len()
    }

    /// The running entity.
    pub fn curr(&self) -> Option<&(Entity, T)> {
        self.curr.as_ref()
    }

    fn key(&self, se: &Entity) -> i128 {
        i128::from(se.vruntime - self.zero_vruntime)
    }

    /// The sums of the average with the running entity counted.
    fn sums(&self) -> (i128, u64) {
        let (mut sum, mut load) = (self.sum_w_key, self.sum_weight);
        if let Some((se, _)) = &self.curr {
            sum += self.key(se) * i128::from(se.weight);
            load += se.weight;
        }
        (sum, load)
    }

    /// The weighted average vruntime of the runnable entities (Linux
    /// `avg_vruntime`), rounded down.
    pub fn avg_vruntime(&self) -> i64 {
        let (sum, load) = self.sums();
        if load == 0 {
            return self.zero_vruntime;
        }
        self.zero_vruntime + sum.div_euclid(i128::from(load)) as i64
    }

    /// Whether `se` has received no more than its share: vruntime at or
    /// below the average (Linux `entity_eligible`, without the division).
    pub fn eligible(&self, se: &Entity) -> bool {
        let (sum, load) = self.sums();
        sum >= self.key(se) * i128::from(load)
    }

    fn add_to_sums(&mut self, se: &Entity) {
        self.sum_w_key += self.key(se) * i128::from(se.weight);
        self.sum_weight += se.weight;
    }

    fn sub_from_sums(&mut self, se: &Entity) {
        self.sum_w_key -= self.key(se) * i128::from(se.weight);
        self.sum_weight -= se.weight;
    }

    /// Moves the reference point to the average, keeping the keys small
    /// (Linux `update_min_vruntime`'s `avg_vruntime_update`).
    fn rebase(&mut self) {
        let avg = self.avg_vruntime();
        let delta = avg - self.zero_vruntime;
        self.sum_w_key -= i128::from(self.sum_weight) * i128::from(delta);
        self.zero_vruntime = avg;
    }

    /// Sets `se`'s vruntime and deadline for joining this queue (Linux
    /// `place_entity`). The lag is scaled by how the newcomer's weight
    /// moves the average, so that after joining it really is `lag` behind
    /// the new average.
    fn place(&self, se: &mut Entity, placement: Placement) {
        let avg = self.avg_vruntime();
        let (_, load) = self.sums();
        let mut lag = match placement {
            Placement::New => 0,
            Placement::Lag(lag) => lag,
        };
        if load > 0 {
            lag = (i128::from(lag) * i128::from(load + se.weight) / i128::from(load)) as i64;
        }
        se.vruntime = avg - lag;
        let vslice = match placement {
            Placement::New => se.vslice() / 2,
            Placement::Lag(_) => se.vslice(),
        };
        se.deadline = se.vruntime + vslice;
    }

    /// Queues `task` with `weight` and `slice` (ns), placed by
    /// `placement`. Returns whether it should preempt the running entity
    /// (Linux `check_preempt_wakeup_fair`'s test: it is the one EEVDF
    /// would pick, and the running one used up its protected slice).
    pub fn enqueue(&mut self, task: T, weight: u64, slice: u64, placement: Placement) -> bool {
        let mut se = Entity {
            weight,
            slice,
            vruntime: 0,
            deadline: 0,
        };
        self.place(&mut se, placement);
        self.add_to_sums(&se);
        self.queued.push((se, task));
        match &self.curr {
            None => true,
            Some(_) if self.curr_protected => false,
            Some(_) => self.pick_index() == Some(self.queued.len() - 1),
        }
    }

    /// The lag of `se` on leaving (Linux `update_entity_lag`): clamped to
    /// two slices (at least a tick) of virtual time.
    fn lag_of(&self, se: &Entity) -> i64 {
        let limit = calc_delta_fair((2 * se.slice).max(self.tick_ns), se.weight);
        (self.avg_vruntime() - se.vruntime).clamp(-limit, limit)
    }

    /// Takes a queued task off (it moves to another CPU or class, or is
    /// re-weighted).
    pub fn dequeue(&mut self, same: impl Fn(&T) -> bool) -> Option<Left<T>> {
        let at = self.queued.iter().position(|(_, t)| same(t))?;
        Some(self.remove_at(at))
    }

    fn remove_at(&mut self, at: usize) -> Left<T> {
        // The lag is taken against the average with the entity counted.
        let vlag = self.lag_of(&self.queued[at].0);
        if at == 0 {
            self.next_buddy = false;
        }
        let (se, task) = self.queued.swap_remove(at);
        self.sub_from_sums(&se);
        self.release_spare_capacity();
        Left {
            task,
            vlag,
            vruntime: se.vruntime,
        }
    }

    /// After a burst (a fork bomb queues thousands), gives back half of the
    /// queue's storage once it is three quarters empty, so a CPU does not
    /// keep its peak for good. Fallible: if the smaller buffer cannot be
    /// had, the queue keeps the one it has. Amortised O(1) per dequeue.
    fn release_spare_capacity(&mut self) {
        const KEEP: usize = 64;
        let capacity = self.queued.capacity();
        if capacity <= KEEP || self.queued.len() > capacity / 4 {
            return;
        }
        let mut smaller = Vec::new();
        if smaller.try_reserve_exact(capacity / 2).is_ok() {
            smaller.append(&mut self.queued);
            self.queued = smaller;
        }
    }

    /// Takes the running task off: it sleeps, exits, or leaves the fair
    /// class (Linux `dequeue_entity` with `update_entity_lag`).
    pub fn dequeue_curr(&mut self) -> Option<Left<T>> {
        let vlag = self.curr.as_ref().map(|(se, _)| self.lag_of(se))?;
        let (se, task) = self.curr.take()?;
        Some(Left {
            task,
            vlag,
            vruntime: se.vruntime,
        })
    }

    /// Takes the first queued task `movable` allows (idle balance); its lag
    /// goes with it.
    pub fn take_movable(&mut self, movable: impl Fn(&T) -> bool) -> Option<Left<T>> {
        let at = self.queued.iter().rposition(|(_, t)| movable(t))?;
        Some(self.remove_at(at))
    }

    /// Charges `delta_ns` of CPU time to the running entity (Linux
    /// `update_curr` and `update_deadline`). Returns whether its slice is
    /// used up with another entity waiting: time to reschedule.
    pub fn update_curr(&mut self, delta_ns: u64) -> bool {
        let Some((se, _)) = &mut self.curr else {
            return false;
        };
        se.vruntime += calc_delta_fair(delta_ns, se.weight);
        let mut slice_over = false;
        if se.vruntime >= se.deadline {
            se.deadline = se.vruntime + se.vslice();
            self.curr_protected = false;
            slice_over = true;
        }
        self.rebase();
        slice_over && !self.queued.is_empty()
    }

    /// The running entity goes back among the queued ones (Linux
    /// `put_prev_entity`): it stays runnable.
    pub fn put_prev(&mut self) {
        if let Some((se, task)) = self.curr.take() {
            self.add_to_sums(&se);
            self.queued.push((se, task));
        }
    }

    /// `sched_yield` (Linux `yield_task_fair`): the running entity gives up
    /// the rest of its slice: if eligible, it forfeits its virtual time up
    /// to its deadline (Linux 6.18's "forfeit vruntime on yield", so a
    /// yield loop lets the others become eligible), and its deadline moves
    /// one slice on.
    pub fn yield_curr(&mut self) {
        let eligible = self.curr.as_ref().is_some_and(|(se, _)| self.eligible(se));
        if let Some((se, _)) = &mut self.curr {
            if eligible {
                se.vruntime = se.deadline;
            }
            se.deadline += se.vslice();
            self.curr_protected = false;
        }
    }

    /// Asks for the last queued entity to be picked next if it is
    /// eligible then (Linux `set_next_buddy`).
    pub fn set_next_buddy_last(&mut self) {
        self.next_buddy = !self.queued.is_empty();
        if self.next_buddy {
            let last = self.queued.len() - 1;
            self.queued.swap(0, last);
        }
    }

    /// The queued entity EEVDF picks: the eligible one with the earliest
    /// deadline (Linux `pick_eevdf`); if none is eligible (rounding), the
    /// earliest deadline. Compares against the running entity too: `None`
    /// if that one wins.
    fn pick_index(&self) -> Option<usize> {
        let (sum, load) = self.sums();
        let eligible = |se: &Entity| sum >= self.key(se) * i128::from(load);
        let mut best: Option<(usize, i64)> = None;
        if let Some((se, _)) = &self.curr {
            if eligible(se) {
                best = Some((usize::MAX, se.deadline));
            }
        }
        for (at, (se, _)) in self.queued.iter().enumerate() {
            if eligible(se) && best.is_none_or(|(_, deadline)| se.deadline < deadline) {
                best = Some((at, se.deadline));
            }
        }
        match best {
            Some((usize::MAX, _)) => None,
            Some((at, _)) => Some(at),
            None => self
                .queued
                .iter()
                .enumerate()
                .min_by_key(|(_, (se, _))| se.deadline)
                .map(|(at, _)| at),
        }
    }

    /// Picks the next entity to run among the queued ones and makes it the
    /// running one (the caller put the previous one back first: Linux
    /// `pick_next_entity` + `set_next_entity`). The next buddy wins if it
    /// is eligible.
    pub fn pick_next(&mut self) -> Option<&T> {
        debug_assert!(self.curr.is_none(), "put_prev first");
        let buddy = core::mem::take(&mut self.next_buddy);
        let at = match self.queued.first() {
            Some((se, _)) if buddy && self.eligible(se) => 0,
            _ => self.pick_index()?,
        };
        let (se, task) = self.queued.swap_remove(at);
        self.sub_from_sums(&se);
        self.release_spare_capacity();
        self.curr = Some((se, task));
        self.curr_protected = true;
        self.curr.as_ref().map(|(_, task)| task)
    }

    /// Changes the weight (nice) and slice of a queued or running entity,
    /// keeping its lag in real time (Linux `reweight_entity`: the virtual
    /// lag scales by old weight / new weight, and so does the distance to
    /// its deadline).
    pub fn reweight(&mut self, same: impl Fn(&T) -> bool, weight: u64, slice: u64) {
        let avg = self.avg_vruntime();
        let scale =
            |v: i64, old: u64| (i128::from(v) * i128::from(old) / i128::from(weight)) as i64;
        let is_curr = self.curr.as_ref().is_some_and(|(_, t)| same(t));
        if is_curr {
            let Some((se, _)) = &mut self.curr else {
                return;
            };
            let (lag, to_deadline) = (avg - se.vruntime, se.deadline - se.vruntime);
            let old = se.weight;
            se.weight = weight;
            se.slice = slice;
            se.vruntime = avg - scale(lag, old);
            se.deadline = se.vruntime + scale(to_deadline, old);
            self.rebase();
            return;
        }
        let Some(at) = self.queued.iter().position(|(_, t)| same(t)) else {
            return;
        };
        let mut se = self.queued[at].0;
        self.sub_from_sums(&se);
        let (lag, to_deadline) = (avg - se.vruntime, se.deadline - se.vruntime);
        let old = se.weight;
        se.weight = weight;
        se.slice = slice;
        se.vruntime = avg - scale(lag, old);
        se.deadline = se.vruntime + scale(to_deadline, old);
        self.queued[at].0 = se;
        self.add_to_sums(&se);
        self.rebase();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: u64 = 4_000_000;
    const SLICE: u64 = 700_000;

    #[test]
    fn a_queue_gives_back_storage_after_a_burst() {
        let mut queue = FairQueue::new(TICK);
        for task in 0..10_000usize {
            queue.enqueue(task, NICE_0_LOAD, SLICE, Placement::New);
        }
        let peak = queue.queued.capacity();
        for task in 0..9_990 {
            queue.dequeue(|t| *t == task).unwrap();
        }
        let left = queue.queued.capacity();
        assert!(left <= peak / 64, "{left} of {peak} kept");
        assert_eq!(queue.nr_queued(), 10);
        assert!(queue.pick_next().is_some_and(|t| *t >= 9_990));
    }

    /// Runs the queue for `ticks` ticks as the kernel does (charge a tick,
    /// reschedule when asked) and returns the CPU time each task got.
    fn run(queue: &mut FairQueue<usize>, tasks: usize, ticks: usize) -> Vec<u64> {
        let mut got = alloc::vec![0u64; tasks];
        if queue.curr().is_none() {
            queue.pick_next();
        }
        for _ in 0..ticks {
            let running = queue.curr().expect("a task runs").1;
            got[running] += TICK;
            if queue.update_curr(TICK) {
                queue.put_prev();
                queue.pick_next();
            }
        }
        got
    }

    fn share(got: &[u64], of: usize) -> f64 {
        got[of] as f64 / got.iter().sum::<u64>() as f64
    }

    #[test]
    fn weights_are_linux_table() {
        assert_eq!(nice_to_weight(0), 1024);
        assert_eq!(nice_to_weight(19), 15);
        assert_eq!(nice_to_weight(-20), 88761);
        assert_eq!(nice_to_weight(5), 335);
        assert_eq!(nice_to_weight(40), 15, "clamped");
        assert_eq!(calc_delta_fair(1000, 2048), 500);
    }

    #[test]
    fn cpu_shares_follow_weights() {
        for (nice, expected) in [(19, 15.0 / 1039.0), (5, 335.0 / 1359.0), (0, 0.5)] {
            let mut queue = FairQueue::new(TICK);
            queue.enqueue(0, 1024, SLICE, Placement::New);
            queue.enqueue(1, nice_to_weight(nice), SLICE, Placement::New);
            let got = run(&mut queue, 2, 10_000);
            let share = share(&got, 1);
            assert!(
                (share - expected).abs() < expected * 0.15 + 0.002,
                "nice {nice}: share {share}, expected {expected}"
            );
        }
    }

    #[test]
    fn idle_policy_weight_gets_a_sliver() {
        let mut queue = FairQueue::new(TICK);
        queue.enqueue(0, 1024, SLICE, Placement::New);
        queue.enqueue(1, WEIGHT_IDLEPRIO, SLICE, Placement::New);
        let got = run(&mut queue, 2, 10_000);
        assert!(share(&got, 1) < 0.01, "{got:?}");
        assert!(got[1] > 0, "{got:?}");
    }

    #[test]
    fn new_task_starts_at_the_average_without_lag() {
        let mut queue = FairQueue::new(TICK);
        queue.enqueue(0, 1024, SLICE, Placement::New);
        run(&mut queue, 1, 100);
        let avg = queue.avg_vruntime();
        queue.enqueue(1, 1024, SLICE, Placement::New);
        let child = queue.queued.last().unwrap().0;
        assert_eq!(child.vruntime, avg);
        assert_eq!(child.deadline, avg + SLICE as i64 / 2);
        assert!(queue.eligible(&child));
    }

    #[test]
    fn fork_loop_does_not_starve_a_spinner() {
        // Task 0 spins; task 1 forks a child every tick that runs one
        // tick and exits. The spinner keeps about a third or more.
        let mut queue = FairQueue::new(TICK);
        queue.enqueue(0, 1024, SLICE, Placement::New);
        queue.enqueue(1, 1024, SLICE, Placement::New);
        queue.pick_next();
        let mut spinner = 0;
        let mut next_child = 2;
        for _ in 0..5_000 {
            let running = queue.curr().unwrap().1;
            match running {
                0 => spinner += 1,
                1 => {
                    queue.enqueue(next_child, 1024, SLICE, Placement::New);
                    next_child += 1;
                }
                _ => {
                    queue.update_curr(TICK);
                    queue.dequeue_curr().unwrap();
                    queue.pick_next();
                    continue;
                }
            }
            if queue.update_curr(TICK) {
                queue.put_prev();
                queue.pick_next();
            }
        }
        assert!(spinner > 5_000 / 4, "spinner ran {spinner} of 5000 ticks");
    }

    #[test]
    fn lag_is_kept_across_sleep_and_clamped() {
        let mut queue = FairQueue::new(TICK);
        for task in 0..3 {
            queue.enqueue(task, 1024, SLICE, Placement::New);
        }
        run(&mut queue, 3, 30);
        // Whoever runs now ran the most: its lag is negative (or zero).
        let left = queue.dequeue_curr().unwrap();
        assert!(left.vlag <= 0, "{left:?}");
        let limit = calc_delta_fair(TICK.max(2 * SLICE), 1024);
        assert!(left.vlag >= -limit);
        queue.pick_next();
        run(&mut queue, 3, 10);
        queue.put_prev();
        queue.enqueue(left.task, 1024, SLICE, Placement::Lag(left.vlag));
        let back = queue.queued.last().unwrap().0;
        assert!(back.vruntime >= queue.avg_vruntime(), "{back:?}");
        // A big positive lag is clamped on leaving.
        let mut queue = FairQueue::new(TICK);
        queue.enqueue(0, 1024, SLICE, Placement::New);
        queue.enqueue(1, 1024, SLICE, Placement::Lag(-1_000_000_000));
        let left = queue.dequeue(|&t| t == 1).unwrap();
        assert_eq!(left.vlag, -limit);
    }

    #[test]
    fn lag_is_renormalised_on_another_queue() {
        let mut a = FairQueue::new(TICK);
        a.enqueue(0, 1024, SLICE, Placement::New);
        a.enqueue(1, 1024, SLICE, Placement::New);
        run(&mut a, 2, 1000);
        a.put_prev();
        let left = a.take_movable(|_| true).unwrap();
        let mut b: FairQueue<usize> = FairQueue::new(TICK);
        b.enqueue(5, 1024, SLICE, Placement::New);
        b.pick_next();
        b.put_prev();
        b.enqueue(left.task, 1024, SLICE, Placement::Lag(left.vlag));
        let moved = b.queued.last().unwrap().0;
        // Its vruntime is on b's scale: near b's average, not a's.
        assert!((moved.vruntime - b.avg_vruntime()).abs() <= 2 * TICK as i64);
        assert!(left.vruntime > 1_000_000_000, "a's scale: {left:?}");
    }

    #[test]
    fn wakeup_preempts_only_after_the_protected_slice() {
        let mut queue = FairQueue::new(TICK);
        queue.enqueue(0, 1024, SLICE, Placement::New);
        queue.pick_next();
        // Just picked: its slice is protected.
        assert!(!queue.enqueue(1, 1024, SLICE, Placement::Lag(0)));
        // It runs a slice and a bit: a woken task with lag preempts.
        assert!(queue.update_curr(SLICE + 1));
        assert!(queue.enqueue(2, 1024, SLICE, Placement::Lag(1_000_000)));
        // One far behind its share (negative lag) is not eligible.
        assert!(!queue.enqueue(3, 1024, SLICE, Placement::Lag(-10_000_000)));
    }

    #[test]
    fn next_buddy_runs_next_and_yield_moves_the_deadline() {
        let mut queue = FairQueue::new(TICK);
        queue.enqueue(0, 1024, SLICE, Placement::New);
        queue.enqueue(1, 1024, SLICE, Placement::New);
        queue.pick_next();
        queue.enqueue(2, 1024, SLICE, Placement::New);
        queue.set_next_buddy_last();
        queue.put_prev();
        assert_eq!(queue.pick_next(), Some(&2));
        let before = queue.curr().unwrap().0;
        assert!(queue.eligible(&before));
        queue.yield_curr();
        let after = queue.curr().unwrap().0;
        assert_eq!(after.vruntime, before.deadline, "forfeits its time");
        assert_eq!(after.deadline, before.deadline + SLICE as i64);
    }

    #[test]
    fn reweight_keeps_real_lag() {
        let mut queue = FairQueue::new(TICK);
        queue.enqueue(0, 1024, SLICE, Placement::New);
        queue.enqueue(1, 1024, SLICE, Placement::Lag(-2048));
        queue.pick_next();
        queue.reweight(|&t| t == 1, 2048, SLICE);
        let (se, _) = queue.queued.iter().find(|(_, t)| *t == 1).unwrap();
        assert_eq!(se.weight, 2048);
        let got = run(&mut queue, 2, 3000);
        let share = share(&got, 1);
        assert!((share - 2.0 / 3.0).abs() < 0.05, "{share}");
    }
}
