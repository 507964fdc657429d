//! Engines that wait on engines: requirements across slot kinds ("greeks
//! needs optionQuote and underlyingQuote Filled"), evaluated against the
//! ledgers, and the batch claim of ready windows.
//!
//! A requirement mask has bit `code` set for each slot kind (by its
//! vocabulary code) that must be Filled.

use super::engine::claimable;
use super::{now_ms, Controller};
use crate::error::{Error, Result};
use crate::slot::{ClaimGrant, SlotAddr};
use crate::vocab::{SlotKind, SlotStatus};

impl Controller {
    /// The slot kinds of a requirement mask.
    fn required_kinds(requirements: u32) -> Result<Vec<SlotKind>> {
        if requirements >> SlotKind::ALL.len() != 0 {
            return Err(Error::invalid(format!(
                "requirement mask {requirements:#x} names slot kind codes past {}",
                SlotKind::ALL.len() - 1
            )));
        }
        Ok(SlotKind::ALL.iter().copied().filter(|k| requirements & (1 << k.code()) != 0).collect())
    }

    fn requirements_met(&self, symbol: u32, window_idx: u32, required: &[SlotKind]) -> Result<bool> {
        for &k in required {
            if self.ledger(k).read(symbol, window_idx, k.column())?.status != SlotStatus::Filled {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// True when every slot kind of `requirements` is Filled in (symbol,
    /// window), across both ledgers.
    pub fn is_ready(&self, symbol: u32, window_idx: u32, requirements: u32) -> Result<bool> {
        self.symbols.check_id(symbol)?;
        self.check_window(window_idx)?;
        let required = Self::required_kinds(requirements)?;
        self.requirements_met(symbol, window_idx, &required)
    }

    /// First window `>= start` whose `requirements` are all Filled and whose
    /// `for_kind` slot can be claimed now (Empty, Cleared, or Pending with an
    /// expired lease; not Filled, not Retired, not held by a live claim).
    pub fn next_ready_window(&self, symbol: u32, start: u32, requirements: u32, for_kind: SlotKind) -> Result<Option<u32>> {
        self.symbols.check_id(symbol)?;
        let required = Self::required_kinds(requirements)?;
        let end = self.window_count();
        let now = now_ms();
        let mut w = start;
        while w < end {
            let found = self.ledger(for_kind).find_window(symbol, w, end, for_kind.column(), |cell, s| claimable(cell, s, now))?;
            let Some(candidate) = found else { return Ok(None) };
            if self.requirements_met(symbol, candidate, &required)? {
                return Ok(Some(candidate));
            }
            w = candidate + 1;
        }
        Ok(None)
    }

    /// Claims up to `n` ready windows `>= start.window` (see
    /// [`next_ready_window`](Self::next_ready_window)) of `start.kind`, in
    /// window order; returns (window, grant) pairs.
    pub fn claim_next_ready(&self, start: SlotAddr, requirements: u32, n: u32, lease_ms: Option<u64>) -> Result<Vec<(u32, ClaimGrant)>> {
        let mut out = Vec::with_capacity(n.min(4096) as usize);
        let mut w = start.window;
        while (out.len() as u32) < n {
            let Some(win) = self.next_ready_window(start.symbol, w, requirements, start.kind)? else { break };
            match self.claim(SlotAddr { window: win, ..start }, lease_ms) {
                Ok(g) => out.push((win, g)),
                Err(Error::SlotWrite { .. }) => {}
                Err(e) => return Err(e),
            }
            w = win + 1;
        }
        Ok(out)
    }
}
