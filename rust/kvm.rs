// SPDX-License-Identifier: GPL-2.0

//! The one `unsafe` layer: safe views of KVM's state, over the C shim.
//!
//! Every `unsafe` block that touches KVM state is in this folder.  Each
//! view states the invariant that makes it sound where it is built, once:
//!
//! - a VM with `slots_lock` held ([`vm::SlotsLocked`]): its memslots and
//!   their bitmaps stay as they are ([`memslot`]);
//! - `mmu_lock` held for write ([`mmu`]): KVM's page tables and rmaps stay
//!   allocated and change only atomically ([`page_tables`], [`rmaps`]),
//!   which the masked write-protect walks ([`wp_masked`]);
//! - a vCPU's dirty ring, as KVM allocated it ([`ring`]);
//! - the write-protect-all state KVM keeps for the module, in the VM and
//!   beside each page table ([`wp_all`]);
//! - a memslot's dirty bitmap shared with user space, its pages, files and
//!   mappings ([`shared_bitmap`]).
//!
//! Beside them: the counters ([`counters`]) and the tracepoints
//! ([`trace`]) that show what the module served.
//!
//! The entry points (`crate::entry`) turn KVM's raw pointers into these
//! views, under the contract each one's `# Safety` section states; the
//! pure algorithms (`crate::algo`) run over the views.

pub(crate) mod bindings;
pub(crate) mod counters;
pub(crate) mod dirty_log;
pub(crate) mod host;
pub(crate) mod memslot;
pub(crate) mod mmu;
mod page_tables;
pub(crate) mod params;
pub(crate) mod popcnt;
pub(crate) mod registration;
pub(crate) mod ring;
mod rmaps;
pub(crate) mod shared_bitmap;
pub(crate) mod trace;
pub(crate) mod uapi;
pub(crate) mod vm;
pub(crate) mod wp_all;
pub(crate) mod wp_masked;
