//! The 8250 UART at 0x3f8 (vm-superio), its interrupt line and its input.
//!
//! Output goes to the writer the VMM chose (stdout). Input arrives from the
//! event loop; the UART FIFO holds only 64 bytes, so the rest waits in
//! `pending` until the guest has drained the FIFO (vm-superio reports that
//! through `SerialEvents::in_buffer_empty`, which kicks the event loop).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use vm_superio::serial::SerialEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// Raises the UART's interrupt through an irqfd.
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// Tells the event loop that the guest emptied the receive FIFO.
pub struct InputDrained(pub EventFd);

impl SerialEvents for InputDrained {
    fn buffer_read(&self) {}
    fn out_byte(&self) {}
    fn tx_lost_byte(&self) {}
    fn in_buffer_empty(&self) {
        // A full eventfd counter already wakes the loop; nothing is lost.
        let _ = self.0.write(1);
    }
}

type Uart = Serial<IrqTrigger, InputDrained, Box<dyn Write + Send>>;

/// The serial device and the input that does not fit its FIFO yet.
pub struct SerialDevice {
    uart: Uart,
    pending: VecDeque<u8>,
}

/// A serial device shared by the vCPU thread and the event loop.
#[derive(Clone)]
pub struct SharedSerial(Arc<Mutex<SerialDevice>>);

impl SharedSerial {
    /// A UART whose interrupt is `irq` and whose output goes to `out`;
    /// `drained` is signalled whenever the guest empties the receive FIFO.
    pub fn new(irq: EventFd, drained: EventFd, out: Box<dyn Write + Send>) -> Self {
        let uart = Serial::with_events(IrqTrigger(irq), InputDrained(drained), out);
        Self(Arc::new(Mutex::new(SerialDevice {
            uart,
            pending: VecDeque::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, SerialDevice> {
        // A poisoned lock means a thread died mid-access; the device state
        // itself stays consistent byte by byte, so keep going.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A guest write to register `offset`.
    pub fn write(&self, offset: u8, value: u8) {
        if let Err(e) = self.lock().uart.write(offset, value) {
            log::warn!("serial: {e}");
        }
    }

    /// A guest read of register `offset`.
    pub fn read(&self, offset: u8) -> u8 {
        self.lock().uart.read(offset)
    }

    /// Queues input for the guest and moves what fits into the FIFO.
    pub fn queue_input(&self, bytes: &[u8]) {
        let mut device = self.lock();
        device.pending.extend(bytes);
        device.feed_fifo();
    }

    /// Moves pending input into the FIFO (after the guest drained it).
    pub fn feed_fifo(&self) {
        self.lock().feed_fifo();
    }
}

impl SerialDevice {
    fn feed_fifo(&mut self) {
        while !self.pending.is_empty() && self.uart.fifo_capacity() > 0 {
            let (front, _) = self.pending.as_slices();
            match self.uart.enqueue_raw_bytes(front) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) => {
                    log::warn!("serial input: {e}");
                    break;
                }
            }
        }
    }
}

/// stdout that flushes every write, so the guest's output appears as it is
/// produced.
pub struct FlushingStdout;

impl Write for FlushingStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = io::stdout().lock();
        out.write_all(buf)?;
        out.flush()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}
