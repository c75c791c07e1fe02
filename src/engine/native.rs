//! The native backend on its own ([`NativeEngine`]): the streaming CPU kernel of
//! [`crate::native`] with a workspace per worker thread.

use crate::native::{Isa, NativeSesr, Workspace};
use crate::pool::Pool;
use crate::sample::Depth;
use crate::weights::Precision;

/// The native backend on its own: no libtorch code is reachable from it, so a program that
/// uses only this (the GStreamer element) links no libtorch even where the crate is built with
/// the `torch` feature.
pub struct NativeEngine {
    net: NativeSesr,
    workspaces: Vec<Workspace>,
    pool: Pool,
    /// How its weights came to be trusted: `embedded`, `digests`, or checked against the
    /// TorchScript module.
    pub trust: &'static str,
}

impl NativeEngine {
    pub(super) fn new(net: NativeSesr, trust: &'static str, pool: Pool) -> Self {
        let workspaces = (0..pool.threads()).map(|_| Workspace::new()).collect();
        NativeEngine { net, workspaces, pool, trust }
    }

    pub fn scale(&self) -> usize {
        self.net.scale()
    }

    pub fn isa(&self) -> Isa {
        self.net.isa()
    }

    /// The arithmetic it runs in (int8 when loaded so, or picked by `auto_precision`).
    pub fn precision(&self) -> Precision {
        self.net.precision()
    }

    pub fn threads(&self) -> usize {
        self.workspaces.len()
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn macs_per_pixel(&self) -> usize {
        self.net.macs_per_pixel()
    }

    /// See [`Engine::upscale_luma`](super::Engine::upscale_luma).
    pub fn upscale_luma(&mut self, src: &[u8], stride: usize, w: usize, h: usize, dst: &mut [u8], dst_stride: usize) {
        self.net.upscale(src, stride, w, h, dst, dst_stride, &mut self.workspaces, &self.pool);
    }

    /// See [`Engine::upscale_luma16`](super::Engine::upscale_luma16).
    #[allow(clippy::too_many_arguments)]
    pub fn upscale_luma16(
        &mut self,
        src: &[u16],
        stride: usize,
        w: usize,
        h: usize,
        dst: &mut [u16],
        dst_stride: usize,
        depth: Depth,
    ) -> Result<(), String> {
        if self.net.precision() == Precision::Int8 {
            return Err(format!("int8 takes 8-bit video; this stream is {}-bit (use precision=fp32)", depth.bits));
        }
        self.net.upscale_u16(src, stride, w, h, dst, dst_stride, depth, &mut self.workspaces, &self.pool);
        Ok(())
    }
}
