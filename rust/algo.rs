// SPDX-License-Identifier: GPL-2.0

//! The pure algorithms of dirty tracking: `core` only, no kernel types, no
//! `unsafe` that touches KVM state.
//!
//! Each file builds unchanged here and in the user-space test crate
//! `tools/dirty-algos`, whose `cargo test` checks it (property tests, and
//! models of the races each one argues about).  Their items are `pub` for
//! that crate; here only the kernel views (`crate::kvm`) and the entry points
//! (`crate::entry`) use them.

/// `KVM_CLEAR_DIRTY_LOG`: clear what user space names, re-protect what was
/// really cleared.
#[allow(unreachable_pub)]
pub(crate) mod clear;
/// Harvesting a dirty bitmap word by word, each word protected before the
/// next.
#[allow(unreachable_pub)]
pub(crate) mod harvest;
/// The masked write-protect as a walk of x86 TDP or arm64 stage-2 page
/// tables.
#[allow(unreachable_pub)]
pub(crate) mod pt_walk;
/// The per-vCPU dirty ring: push, and the reset that coalesces and
/// validates what user space hands back.
#[allow(unreachable_pub)]
pub(crate) mod ring;
/// The masked write-protect as a walk of the x86 shadow MMU's rmaps.
#[allow(unreachable_pub)]
pub(crate) mod rmap_walk;
/// A memslot's dirty bitmap shared with user space: the word operations
/// of the protocol, the interface's refusals, the mapping's faults and
/// who keeps the pages.
#[allow(unreachable_pub, dead_code)]
pub(crate) mod shared_bitmap;
/// How user space names a memslot and its pages, and the checks a name
/// must pass.
#[allow(unreachable_pub)]
pub(crate) mod slot;
/// Write-protect-all by generation, for page tables whose non-leaf entries
/// carry a write permission (x86).
#[allow(unreachable_pub, dead_code)]
pub(crate) mod wp_all;
/// Write-protect-all by pending table descriptors (arm64 stage 2).
#[allow(unreachable_pub, dead_code)]
pub(crate) mod wp_all_stage2;
