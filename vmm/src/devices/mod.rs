//! Emulated devices.

pub mod serial;
pub mod virtio;
