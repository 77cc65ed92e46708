//! The VMM's main thread: an event-manager loop over stdin, the serial
//! port's "input drained" event and the vCPU's "stopped" event.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

use crate::builder::SharedConsoleTransport;
use crate::devices::serial::SharedSerial;
use crate::error::{Error, Result};
use crate::terminal::ESCAPE_KEY;

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopEnd {
    /// The vCPU thread reported that the guest stopped.
    GuestStopped,
    /// The deadline passed.
    Timeout,
    /// The user pressed the escape key.
    Quit,
}

/// Forwards stdin to the serial port.
struct StdinInput {
    serial: SharedSerial,
    /// Watch for the escape key (only when stdin is a raw terminal).
    raw_terminal: bool,
    quit: Arc<AtomicBool>,
}

impl MutEventSubscriber for StdinInput {
    fn init(&mut self, ops: &mut EventOps) {
        // epoll refuses regular files and /dev/null: then there is no input.
        if let Err(e) = ops.add(Events::new(&std::io::stdin(), EventSet::IN)) {
            log::debug!("stdin is not pollable ({e:?}); no console input");
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let mut buffer = [0u8; 256];
        // SAFETY: reading into a local buffer of the given length.
        let n = unsafe { libc::read(libc::STDIN_FILENO, buffer.as_mut_ptr().cast(), buffer.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                return;
            }
            // End of input (or an error): stop watching stdin.
            let _ = ops.remove(events);
            return;
        }
        let input = &buffer[..n as usize];
        if self.raw_terminal {
            if let Some(at) = input.iter().position(|&b| b == ESCAPE_KEY) {
                self.serial.queue_input(&input[..at]);
                self.quit.store(true, Ordering::Release);
                return;
            }
        }
        self.serial.queue_input(input);
    }
}

/// Refills the UART FIFO when the guest has drained it.
struct SerialDrained {
    serial: SharedSerial,
    event: EventFd,
}

impl MutEventSubscriber for SerialDrained {
    fn init(&mut self, ops: &mut EventOps) {
        ops.add(Events::new(&self.event, EventSet::IN))
            .expect("an eventfd is pollable");
    }

    fn process(&mut self, _: Events, _: &mut EventOps) {
        let _ = self.event.read();
        self.serial.feed_fifo();
    }
}

/// Processes the virtio console's queues when the guest notifies them
/// (the ioeventfd on `QueueNotify`).
struct VirtioNotify {
    transport: SharedConsoleTransport,
    event: EventFd,
}

impl MutEventSubscriber for VirtioNotify {
    fn init(&mut self, ops: &mut EventOps) {
        ops.add(Events::new(&self.event, EventSet::IN))
            .expect("an eventfd is pollable");
    }

    fn process(&mut self, _: Events, _: &mut EventOps) {
        // The transport reads (clears) the eventfd itself.
        self.transport
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .handle_notify_event();
    }
}

/// Notices the vCPU thread's exit.
struct GuestStopped {
    event: EventFd,
    stopped: Arc<AtomicBool>,
}

impl MutEventSubscriber for GuestStopped {
    fn init(&mut self, ops: &mut EventOps) {
        ops.add(Events::new(&self.event, EventSet::IN))
            .expect("an eventfd is pollable");
    }

    fn process(&mut self, _: Events, _: &mut EventOps) {
        let _ = self.event.read();
        self.stopped.store(true, Ordering::Release);
    }
}

/// What the loop watches.
pub struct LoopInputs {
    pub serial: SharedSerial,
    pub serial_drained: EventFd,
    pub guest_stopped: EventFd,
    /// The virtio console's transport and its notify eventfd.
    pub virtio_console: SharedConsoleTransport,
    pub virtio_notify: EventFd,
    /// Forward stdin to the guest.
    pub read_stdin: bool,
    pub raw_terminal: bool,
    pub deadline: Option<Instant>,
}

/// Runs until the guest stops, the deadline passes or the user quits.
pub fn run(inputs: LoopInputs) -> Result<LoopEnd> {
    let mut manager = EventManager::<Arc<Mutex<dyn MutEventSubscriber + Send>>>::new()
        .map_err(|e| Error::Io("event manager", std::io::Error::other(format!("{e:?}"))))?;
    let quit = Arc::new(AtomicBool::new(false));
    let stopped = Arc::new(AtomicBool::new(false));

    manager.add_subscriber(Arc::new(Mutex::new(GuestStopped {
        event: inputs.guest_stopped,
        stopped: stopped.clone(),
    })));
    manager.add_subscriber(Arc::new(Mutex::new(SerialDrained {
        serial: inputs.serial.clone(),
        event: inputs.serial_drained,
    })));
    manager.add_subscriber(Arc::new(Mutex::new(VirtioNotify {
        transport: inputs.virtio_console,
        event: inputs.virtio_notify,
    })));
    if inputs.read_stdin {
        manager.add_subscriber(Arc::new(Mutex::new(StdinInput {
            serial: inputs.serial.clone(),
            raw_terminal: inputs.raw_terminal,
            quit: quit.clone(),
        })));
    }
    log::debug!("event loop on stdin fd {}", std::io::stdin().as_raw_fd());

    loop {
        if stopped.load(Ordering::Acquire) {
            return Ok(LoopEnd::GuestStopped);
        }
        if quit.load(Ordering::Acquire) {
            return Ok(LoopEnd::Quit);
        }
        let timeout_ms = match inputs.deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(LoopEnd::Timeout);
                }
                left.as_millis().clamp(1, i32::MAX as u128) as i32
            }
        };
        manager
            .run_with_timeout(timeout_ms)
            .map_err(|e| Error::Io("event loop", std::io::Error::other(format!("{e:?}"))))?;
    }
}
