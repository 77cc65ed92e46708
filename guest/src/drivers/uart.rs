//! 16550 UART driver (COM1): polled output, interrupt-driven input.
//!
//! Every register access is a VM exit, so output checks the transmitter
//! only once per FIFO-full of bytes and input is taken in the interrupt
//! handler into a single-producer/single-consumer ring.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::arch::cpu::{inb, outb};

const DATA: u16 = 0; // RBR (read) / THR (write); DLL with DLAB
const IER: u16 = 1; // interrupt enable; DLM with DLAB
const FCR: u16 = 2; // FIFO control (write)
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;

const IER_RX_AVAILABLE: u8 = 0x01;
const LCR_DLAB: u8 = 0x80;
const LCR_8N1: u8 = 0x03;
const FCR_ENABLE_CLEAR: u8 = 0x07;
const MCR_DTR_RTS_OUT2: u8 = 0x0b;
const LSR_DATA_READY: u8 = 0x01;
const LSR_THR_EMPTY: u8 = 0x20;
/// Bytes the transmit FIFO takes once it reports empty.
const TX_FIFO_DEPTH: usize = 16;

/// The serial port at `base`.
pub struct Uart {
    base: u16,
}

impl Uart {
    pub const fn new(base: u16) -> Self {
        Self { base }
    }

    /// 115200 8N1, FIFOs on, receive interrupts on.
    pub fn init(&self) {
        outb(self.base + IER, 0);
        outb(self.base + LCR, LCR_DLAB);
        outb(self.base + DATA, 1); // divisor 1 = 115200 baud
        outb(self.base + IER, 0);
        outb(self.base + LCR, LCR_8N1);
        outb(self.base + FCR, FCR_ENABLE_CLEAR);
        outb(self.base + MCR, MCR_DTR_RTS_OUT2);
        outb(self.base + IER, IER_RX_AVAILABLE);
    }

    /// Writes bytes, waiting for room in the transmit FIFO.
    pub fn write_bytes(&self, bytes: &[u8]) {
        for chunk in bytes.chunks(TX_FIFO_DEPTH) {
            while inb(self.base + LSR) & LSR_THR_EMPTY == 0 {
                core::hint::spin_loop();
            }
            for &byte in chunk {
                outb(self.base + DATA, byte);
            }
        }
    }

    /// Interrupt handler: moves every received byte into the input ring.
    pub fn handle_irq(&self) {
        while inb(self.base + LSR) & LSR_DATA_READY != 0 {
            INPUT.push(inb(self.base + DATA));
        }
        INPUT_WAIT.wake_all();
    }
}

/// Where readers of the console sleep until input arrives.
pub static INPUT_WAIT: crate::sched::wait::WaitQueue = crate::sched::wait::WaitQueue::new();

/// Input bytes waiting for the shell. Filled by the interrupt handler only,
/// drained by the shell only.
pub static INPUT: ByteRing = ByteRing::new();

const RING_SIZE: usize = 1024;

/// A lock-free single-producer/single-consumer byte ring.
pub struct ByteRing {
    buf: [core::sync::atomic::AtomicU8; RING_SIZE],
    head: AtomicUsize, // next write (producer)
    tail: AtomicUsize, // next read (consumer)
}

impl ByteRing {
    const fn new() -> Self {
        Self {
            buf: [const { core::sync::atomic::AtomicU8::new(0) }; RING_SIZE],
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }

    /// Adds a byte; drops it when the ring is full (the user typed ahead
    /// more than the shell can hold).
    pub fn push(&self, byte: u8) {
        let head = self.head.load(Ordering::Relaxed);
        if head.wrapping_sub(self.tail.load(Ordering::Acquire)) >= RING_SIZE {
            return;
        }
        self.buf[head % RING_SIZE].store(byte, Ordering::Relaxed);
        self.head.store(head.wrapping_add(1), Ordering::Release);
    }

    /// Whether no byte is waiting.
    pub fn is_empty(&self) -> bool {
        self.tail.load(Ordering::Relaxed) == self.head.load(Ordering::Acquire)
    }

    /// Takes the oldest byte.
    pub fn pop(&self) -> Option<u8> {
        let tail = self.tail.load(Ordering::Relaxed);
        if tail == self.head.load(Ordering::Acquire) {
            return None;
        }
        let byte = self.buf[tail % RING_SIZE].load(Ordering::Relaxed);
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        Some(byte)
    }
}
