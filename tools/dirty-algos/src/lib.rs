//! The pure algorithm files of the kernel module (`rust/algo/`), built
//! unchanged for user-space tests.

#[path = "../../../rust/algo/harvest.rs"]
pub mod harvest;

#[path = "../../../rust/algo/clear.rs"]
pub mod clear;

#[path = "../../../rust/algo/ring.rs"]
pub mod ring;

#[path = "../../../rust/algo/slot.rs"]
pub mod slot;

#[path = "../../../rust/algo/wp_all.rs"]
pub mod wp_all;

#[path = "../../../rust/algo/wp_all_stage2.rs"]
pub mod wp_all_stage2;

#[path = "../../../rust/algo/pt_walk.rs"]
pub mod pt_walk;

#[path = "../../../rust/algo/rmap_walk.rs"]
pub mod rmap_walk;

#[path = "../../../rust/algo/shared_bitmap.rs"]
pub mod shared_bitmap;
