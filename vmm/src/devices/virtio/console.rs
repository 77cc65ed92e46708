//! A virtio-console (device ID 3) with one port: receiveq 0 carries host
//! bytes to the driver, transmitq 1 carries the driver's bytes to the host.
//!
//! The host side is [`ConsoleIo`]: [`ConsoleIo::push_input`] queues bytes
//! for the guest (buffered until the driver posts receive buffers), and the
//! guest's output is collected for [`ConsoleIo::take_output`] or handed to
//! a sink set with [`ConsoleIo::set_output_sink`].
//!
//! Each notification drains every available chain and raises at most one
//! interrupt. Transmit notifications are suppressed while a batch is being
//! processed; receive notifications are enabled only while host input waits
//! for buffers, so posting receive buffers costs no exit otherwise.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::Bytes;

use super::{walk_chain, DeviceError, Direction, Interrupt, Memory, VirtioDevice};

/// The virtio device ID of a console.
pub const DEVICE_ID: u32 = 3;
/// Index of the receive queue (host -> guest).
pub const RECEIVEQ: usize = 0;
/// Index of the transmit queue (guest -> host).
pub const TRANSMITQ: usize = 1;
/// The size the queues offer (`QueueNumMax`).
pub const QUEUE_SIZE: u16 = 256;
/// Guest output kept for `take_output` at most; the excess is dropped.
pub const MAX_BUFFERED_OUTPUT: usize = 1 << 20;
/// How often one notification re-checks the ring after re-enabling
/// notifications (the driver may add chains meanwhile from another vCPU).
const MAX_ROUNDS: usize = 8;

type Sink = Box<dyn FnMut(&[u8]) + Send>;

struct Active {
    mem: Memory,
    queues: Vec<Queue>,
    interrupt: Interrupt,
}

#[derive(Default)]
struct State {
    input: VecDeque<u8>,
    output: Vec<u8>,
    output_dropped: bool,
    active: Option<Active>,
}

struct Shared {
    state: Mutex<State>,
    sink: Mutex<Option<Sink>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent chain by chain; a panicked holder left
    // nothing half-done that matters more than the console going on.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The console device (give it to an `MmioTransport`).
pub struct Console {
    shared: Arc<Shared>,
    queue_max_sizes: [u16; 2],
}

/// The host's end of the console; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct ConsoleIo {
    shared: Arc<Shared>,
}

impl Console {
    /// A console and its host end.
    pub fn new() -> (Console, ConsoleIo) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            sink: Mutex::new(None),
        });
        let io = ConsoleIo {
            shared: shared.clone(),
        };
        (
            Console {
                shared,
                queue_max_sizes: [QUEUE_SIZE; 2],
            },
            io,
        )
    }
}

impl ConsoleIo {
    /// Queues `bytes` for the guest and delivers as much as its receive
    /// buffers hold (one interrupt for the lot).
    pub fn push_input(&self, bytes: &[u8]) {
        let mut state = lock(&self.shared.state);
        state.input.extend(bytes);
        state.deliver_input_or_break();
    }

    /// Host bytes not delivered to the guest yet.
    pub fn pending_input(&self) -> usize {
        lock(&self.shared.state).input.len()
    }

    /// The guest's output since the last call (when no sink is set).
    pub fn take_output(&self) -> Vec<u8> {
        let mut state = lock(&self.shared.state);
        state.output_dropped = false;
        std::mem::take(&mut state.output)
    }

    /// Makes the running device fail as if its driver had broken a rule:
    /// it sets DEVICE_NEEDS_RESET, notifies the driver and leaves the
    /// queues alone until the driver resets it. For tests of a driver's
    /// error path; `false` if the device was not running.
    pub fn fail(&self, reason: &str) -> bool {
        let state = lock(&self.shared.state);
        let Some(active) = &state.active else {
            return false;
        };
        active.interrupt.set_needs_reset(&reason);
        true
    }

    /// Sends the guest's output to `sink` from now on (called on the thread
    /// that processes the transmit queue, without the console's lock held).
    pub fn set_output_sink(&self, sink: impl FnMut(&[u8]) + Send + 'static) {
        *lock(&self.shared.sink) = Some(Box::new(sink));
    }
}

/// Takes the next available chain head, if any.
/// `VIRTQ_AVAIL_F_NO_INTERRUPT` in the available ring's flags.
const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Whether the driver asked for no used-buffer notifications on `queue`
/// (without VIRTIO_F_EVENT_IDX the device SHOULD NOT notify then; the
/// virtio-queue crate does not read this flag). Read after the used ring
/// was updated: a driver that clears the flag re-checks the ring after,
/// so one of the two sides sees the other's write.
fn interrupt_suppressed(queue: &Queue, mem: &Memory) -> bool {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    mem.read_obj::<u16>(vm_memory::GuestAddress(queue.avail_ring()))
        .is_ok_and(|flags| flags & VIRTQ_AVAIL_F_NO_INTERRUPT != 0)
}

fn pop_head(queue: &mut Queue, mem: &Memory) -> Result<Option<u16>, DeviceError> {
    let mut iter = queue.iter(mem)?;
    Ok(iter.next().map(|chain| chain.head_index()))
}

impl State {
    /// Delivers pending input; marks the device broken on a driver error.
    fn deliver_input_or_break(&mut self) {
        if let Err(e) = self.deliver_input() {
            if let Some(active) = &self.active {
                active.interrupt.set_needs_reset(&e);
            }
        }
    }

    fn deliver_input(&mut self) -> Result<(), DeviceError> {
        let State { input, active, .. } = self;
        // Not running: the input waits for the driver.
        let Some(Active {
            mem,
            queues,
            interrupt,
        }) = active
        else {
            return Ok(());
        };
        let queue = &mut queues[RECEIVEQ];
        if interrupt.needs_reset() || !queue.ready() {
            interrupt.remind_config_change();
            return Ok(());
        }
        let mut used = false;
        let result = (|| {
            for _ in 0..MAX_ROUNDS {
                while !input.is_empty() {
                    let Some(head) = pop_head(queue, mem)? else {
                        break;
                    };
                    let buffers = walk_chain(mem, queue, head, Direction::DeviceWrites)?;
                    let mut written = 0u32;
                    for buffer in buffers {
                        let n = input.len().min(buffer.len as usize);
                        if n == 0 {
                            break;
                        }
                        let chunk: Vec<u8> = input.drain(..n).collect();
                        mem.write_slice(&chunk, buffer.addr)
                            .map_err(|_| DeviceError::OutOfMemory(buffer.addr.0, buffer.len))?;
                        // n <= buffer.len, and the chain is at most 64 KiB.
                        written += n as u32;
                    }
                    queue.add_used(mem, head, written)?;
                    used = true;
                }
                if input.is_empty() {
                    // Nothing to deliver: buffer posts need not exit.
                    queue.disable_notification(mem)?;
                    return Ok(());
                }
                // Input waits: have the driver kick us when it posts buffers,
                // unless some arrived meanwhile.
                if !queue.enable_notification(mem)? {
                    return Ok(());
                }
            }
            Ok(())
        })();
        if used && result.is_ok() && !interrupt_suppressed(&queues[RECEIVEQ], mem) {
            interrupt.signal_used_queue();
        }
        result
    }

    /// Drains the transmit queue; returns the bytes the driver sent.
    fn transmit(&mut self) -> Result<Vec<u8>, DeviceError> {
        let Some(Active {
            mem,
            queues,
            interrupt,
        }) = &mut self.active
        else {
            return Err(DeviceError::NotActivated);
        };
        let queue = &mut queues[TRANSMITQ];
        if !queue.ready() {
            return Err(DeviceError::QueueNotReady(TRANSMITQ));
        }
        let mut bytes = Vec::new();
        let mut used = false;
        for _ in 0..MAX_ROUNDS {
            queue.disable_notification(mem)?;
            while let Some(head) = pop_head(queue, mem)? {
                for buffer in walk_chain(mem, queue, head, Direction::DeviceReads)? {
                    let start = bytes.len();
                    bytes.resize(start + buffer.len as usize, 0);
                    mem.read_slice(&mut bytes[start..], buffer.addr)
                        .map_err(|_| DeviceError::OutOfMemory(buffer.addr.0, buffer.len))?;
                }
                queue.add_used(mem, head, 0)?;
                used = true;
            }
            if !queue.enable_notification(mem)? {
                break;
            }
        }
        if used && !interrupt_suppressed(queue, mem) {
            interrupt.signal_used_queue();
        }
        Ok(bytes)
    }
}

impl VirtioDevice for Console {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        0
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_max_sizes
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        // `struct virtio_console_config` (cols, rows, max_nr_ports,
        // emerg_wr) without F_SIZE, F_MULTIPORT or F_EMERG_WRITE: all 0.
        data.fill(0);
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        log::debug!(
            "virtio-console: ignored {}-byte config write at {offset:#x}",
            data.len()
        );
    }

    fn activate(
        &mut self,
        mem: Memory,
        _acked_features: u64,
        queues: Vec<Queue>,
        interrupt: Interrupt,
    ) -> Result<(), DeviceError> {
        if queues.len() != 2 {
            return Err(DeviceError::NoSuchQueue(queues.len()));
        }
        let mut state = lock(&self.shared.state);
        state.active = Some(Active {
            mem,
            queues,
            interrupt,
        });
        state.deliver_input_or_break();
        Ok(())
    }

    fn process_queue(&mut self, index: usize) -> Result<(), DeviceError> {
        let mut state = lock(&self.shared.state);
        let active = state.active.as_ref().ok_or(DeviceError::NotActivated)?;
        if active.interrupt.needs_reset() {
            return Ok(());
        }
        let interrupt = active.interrupt.clone();
        let result = match index {
            RECEIVEQ => state.deliver_input(),
            TRANSMITQ => state.transmit().map(|bytes| {
                drop(state);
                self.emit(&bytes);
            }),
            _ => Err(DeviceError::NoSuchQueue(index)),
        };
        if let Err(e) = &result {
            interrupt.set_needs_reset(e);
        }
        result
    }

    fn reset(&mut self) {
        // Host input stays queued for the next driver.
        lock(&self.shared.state).active = None;
    }
}

impl Console {
    fn emit(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(sink) = lock(&self.shared.sink).as_mut() {
            sink(bytes);
            return;
        }
        let mut state = lock(&self.shared.state);
        let room = MAX_BUFFERED_OUTPUT.saturating_sub(state.output.len());
        if bytes.len() > room && !state.output_dropped {
            state.output_dropped = true;
            log::warn!("virtio-console: output buffer full, dropping guest output");
        }
        state
            .output
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use virtio_bindings::bindings::virtio_ring::{
        VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
    };
    use vm_memory::GuestAddress;

    use super::super::mmio::reg;
    use super::super::testutil::*;
    use super::*;

    const NEXT: u16 = VRING_DESC_F_NEXT as u16;
    const WRITE: u16 = VRING_DESC_F_WRITE as u16;

    fn notify(t: &mut Transport, queue: u32) {
        w(t, reg::QUEUE_NOTIFY, queue);
    }

    #[test]
    fn tx_batch_reaches_the_host_with_one_interrupt() {
        let mem = memory();
        let (mut t, io, count) = console(&mem);
        let queues = start(&mut t, &mem);
        mem.write_slice(b"hello, world", GuestAddress(DATA))
            .unwrap();
        queues[1]
            .add_desc_chains(
                &[
                    desc(DATA, 5, 0, 0),
                    desc(DATA + 5, 2, NEXT, 2),
                    desc(DATA + 7, 5, 0, 0),
                    desc(DATA, 1, 0, 0),
                ],
                0,
            )
            .unwrap();
        notify(&mut t, 1);
        assert_eq!(io.take_output(), b"hello, worldh");
        assert_eq!(used_idx(&mem, 1), 3);
        assert_eq!(used_elem(&mem, 1, 0), (0, 0));
        assert_eq!(used_elem(&mem, 1, 1), (1, 0));
        assert_eq!(used_elem(&mem, 1, 2), (3, 0));
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(r(&t, reg::INTERRUPT_STATUS), 1);
        // Notifications are on again once the batch is done.
        assert_eq!(used_flags(&mem, 1), 0);
        assert!(!needs_reset(&t));
        // An empty notification: no interrupt.
        notify(&mut t, 1);
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn tx_without_interrupt_when_the_driver_suppresses_it() {
        let mem = memory();
        let (mut t, io, count) = console(&mem);
        let queues = start(&mut t, &mem);
        // VIRTQ_AVAIL_F_NO_INTERRUPT: the driver polls the used ring.
        mem.write_obj(VIRTQ_AVAIL_F_NO_INTERRUPT, queues[1].avail_addr())
            .unwrap();
        mem.write_slice(b"poll", GuestAddress(DATA)).unwrap();
        queues[1]
            .add_desc_chains(&[desc(DATA, 4, 0, 0)], 0)
            .unwrap();
        notify(&mut t, 1);
        assert_eq!(io.take_output(), b"poll");
        assert_eq!(used_idx(&mem, 1), 1);
        assert_eq!(count.load(Ordering::SeqCst), 0);
        // Cleared again: the next batch interrupts.
        mem.write_obj(0u16, queues[1].avail_addr()).unwrap();
        queues[1]
            .add_desc_chains(&[desc(DATA, 4, 0, 0)], 1)
            .unwrap();
        notify(&mut t, 1);
        assert_eq!(io.take_output(), b"poll");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn tx_output_sink() {
        let mem = memory();
        let (mut t, io, _) = console(&mem);
        let (sender, receiver) = std::sync::mpsc::channel();
        io.set_output_sink(move |bytes| sender.send(bytes.to_vec()).unwrap());
        let queues = start(&mut t, &mem);
        mem.write_slice(b"abc", GuestAddress(DATA)).unwrap();
        queues[1]
            .add_desc_chains(&[desc(DATA, 3, 0, 0)], 0)
            .unwrap();
        notify(&mut t, 1);
        assert_eq!(receiver.try_recv().unwrap(), b"abc");
        assert!(io.take_output().is_empty());
    }

    #[test]
    fn rx_fills_buffers_partially_with_one_interrupt() {
        let mem = memory();
        let (mut t, io, count) = console(&mem);
        let queues = start(&mut t, &mem);
        // No input: buffer posts are not notified.
        assert_eq!(used_flags(&mem, 0), 1);
        queues[0]
            .add_desc_chains(
                &[
                    desc(DATA, 4, WRITE, 0),
                    desc(DATA + 0x100, 3, WRITE | NEXT, 2),
                    desc(DATA + 0x200, 3, WRITE, 0),
                    desc(DATA + 0x300, 8, WRITE, 0),
                ],
                0,
            )
            .unwrap();
        io.push_input(b"hello!!!");
        let mut buf = [0u8; 4];
        mem.read_slice(&mut buf, GuestAddress(DATA)).unwrap();
        assert_eq!(&buf, b"hell");
        let mut buf = [0u8; 3];
        mem.read_slice(&mut buf, GuestAddress(DATA + 0x100))
            .unwrap();
        assert_eq!(&buf, b"o!!");
        mem.read_slice(&mut buf[..1], GuestAddress(DATA + 0x200))
            .unwrap();
        assert_eq!(buf[0], b'!');
        assert_eq!(used_idx(&mem, 0), 2);
        assert_eq!(used_elem(&mem, 0, 0), (0, 4));
        assert_eq!(used_elem(&mem, 0, 1), (1, 4));
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(io.pending_input(), 0);
        assert_eq!(used_flags(&mem, 0), 1);
        // The last buffer takes the next input.
        io.push_input(b"xy");
        assert_eq!(used_idx(&mem, 0), 3);
        assert_eq!(used_elem(&mem, 0, 2), (3, 2));
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn rx_buffers_input_until_the_driver_posts_buffers() {
        let mem = memory();
        let (mut t, io, count) = console(&mem);
        io.push_input(b"early");
        let queues = start(&mut t, &mem);
        io.push_input(b" bird");
        assert_eq!(io.pending_input(), 10);
        assert_eq!(count.load(Ordering::SeqCst), 0);
        // Input waits: the device asked to be notified of new buffers.
        assert_eq!(used_flags(&mem, 0), 0);
        queues[0]
            .add_desc_chains(&[desc(DATA, 6, WRITE, 0)], 0)
            .unwrap();
        notify(&mut t, 0);
        assert_eq!(io.pending_input(), 4);
        assert_eq!(used_elem(&mem, 0, 0), (0, 6));
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(used_flags(&mem, 0), 0);
        queues[0]
            .add_desc_chains(&[desc(DATA + 0x100, 16, WRITE, 0)], 1)
            .unwrap();
        notify(&mut t, 0);
        assert_eq!(io.pending_input(), 0);
        let mut buf = [0u8; 4];
        mem.read_slice(&mut buf, GuestAddress(DATA + 0x100))
            .unwrap();
        assert_eq!(&buf, b"bird");
        assert_eq!(used_elem(&mem, 0, 1), (1, 4));
        assert_eq!(used_flags(&mem, 0), 1);
        // Input survives a device reset.
        w(&mut t, reg::STATUS, 0);
        io.push_input(b"again");
        assert_eq!(io.pending_input(), 5);
    }

    /// Posts `descs` on `queue`, kicks it, and checks the device broke
    /// without touching the used ring.
    fn abuse(queue: usize, descs: &[virtio_queue::desc::RawDescriptor]) {
        let mem = memory();
        let (mut t, io, _) = console(&mem);
        let queues = start(&mut t, &mem);
        queues[queue].add_desc_chains(descs, 0).unwrap();
        if queue == RECEIVEQ {
            io.push_input(b"input");
        } else {
            notify(&mut t, 1);
        }
        assert!(needs_reset(&t), "{descs:?}");
        assert_eq!(used_idx(&mem, queue), 0);
        assert!(io.take_output().is_empty());
        // Broken: the device leaves the rings alone.
        queues[1]
            .add_desc_chains(&[desc(DATA, 1, 0, 0)], 8)
            .unwrap();
        notify(&mut t, 1);
        io.push_input(b"more");
        assert_eq!(used_idx(&mem, 1), 0);
        assert_eq!(used_idx(&mem, 0), 0);
        // Until the driver resets it.
        w(&mut t, reg::STATUS, 0);
        assert!(!needs_reset(&t));
    }

    #[test]
    fn abuse_buffer_outside_memory() {
        abuse(1, &[desc(MEM_SIZE as u64 - 2, 4, 0, 0)]);
        abuse(1, &[desc(u64::MAX - 1, 4, 0, 0)]);
        abuse(0, &[desc(0x4000_0000, 4, WRITE, 0)]);
    }

    #[test]
    fn abuse_chain_loop() {
        abuse(1, &[desc(DATA, 1, NEXT, 1), desc(DATA, 1, NEXT, 0)]);
        abuse(0, &[desc(DATA, 1, WRITE | NEXT, 0)]);
    }

    #[test]
    fn abuse_wrong_direction() {
        abuse(1, &[desc(DATA, 4, WRITE, 0)]);
        abuse(1, &[desc(DATA, 4, NEXT, 1), desc(DATA, 4, WRITE, 0)]);
        abuse(0, &[desc(DATA, 4, 0, 0)]);
    }

    #[test]
    fn abuse_absurd_lengths() {
        abuse(1, &[desc(DATA, 0x8000, NEXT, 1), desc(DATA, 0x8001, 0, 0)]);
        abuse(1, &[desc(DATA, u32::MAX, 0, 0)]);
        abuse(0, &[desc(DATA, 0x1_0001, WRITE, 0)]);
    }

    #[test]
    fn abuse_indices() {
        abuse(1, &[desc(DATA, 1, NEXT, QSIZE)]);
        abuse(1, &[desc(DATA, 1, NEXT, u16::MAX)]);
        abuse(1, &[desc(0x1000, 64, VRING_DESC_F_INDIRECT as u16, 0)]);
    }

    #[test]
    fn abuse_head_index_and_avail_idx() {
        for (head, idx) in [(QSIZE, 1), (u16::MAX, 1), (0, QSIZE + 1), (0, u16::MAX)] {
            let mem = memory();
            let (mut t, _io, _) = console(&mem);
            let queues = start(&mut t, &mem);
            queues[1]
                .desc_table()
                .store(0, desc(DATA, 1, 0, 0))
                .unwrap();
            queues[1].avail().ring().ref_at(0).unwrap().store(head);
            queues[1].avail().idx().store(idx);
            notify(&mut t, 1);
            assert!(needs_reset(&t), "head {head} idx {idx}");
        }
    }

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn random_descriptor_tables_never_panic_or_hang() {
        let mem = memory();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut broken = 0;
        for round in 0..3000 {
            let (mut t, io, _) = console(&mem);
            let queues = start(&mut t, &mem);
            for q in &queues {
                for i in 0..QSIZE {
                    let addr = match rng.below(4) {
                        0 => rng.next(),
                        1 => MEM_SIZE as u64 - rng.below(0x100),
                        _ => DATA + rng.below(0x8000),
                    };
                    let len = match rng.below(4) {
                        0 => rng.next() as u32,
                        1 => rng.below(0x2_0000) as u32,
                        _ => rng.below(0x100) as u32,
                    };
                    let flags = rng.below(16) as u16 & 7;
                    let next = rng.below(u64::from(QSIZE) + 4) as u16;
                    q.desc_table()
                        .store(i, desc(addr, len, flags, next))
                        .unwrap();
                }
                let posted = rng.below(u64::from(QSIZE) + 2);
                for i in 0..posted.min(u64::from(QSIZE)) {
                    let head = rng.below(u64::from(QSIZE) + 2) as u16;
                    q.avail().ring().ref_at(i as usize).unwrap().store(head);
                }
                q.avail().idx().store(posted as u16);
            }
            if round % 2 == 0 {
                io.push_input(&[b'x'; 100]);
                notify(&mut t, 1);
            } else {
                notify(&mut t, 1);
                notify(&mut t, 0);
                io.push_input(&[b'y'; 3000]);
            }
            t.notify_eventfd().write(1).unwrap();
            t.handle_notify_event();
            assert!(io.take_output().len() <= 16 * 0x1_0000);
            broken += usize::from(needs_reset(&t));
        }
        // Both outcomes happen.
        assert!(broken > 0 && broken < 3000, "{broken}");
    }
}
