//! The pure algorithm files of the kernel module, built unchanged for
//! user-space tests.

#[path = "../../../rust/harvest.rs"]
pub mod harvest;

#[path = "../../../rust/clear.rs"]
pub mod clear;

#[path = "../../../rust/ring.rs"]
pub mod ring;

#[path = "../../../rust/wp_all.rs"]
pub mod wp_all;

#[path = "../../../rust/wp_all_stage2.rs"]
pub mod wp_all_stage2;

#[path = "../../../rust/pt_walk.rs"]
pub mod pt_walk;

#[path = "../../../rust/rmap_walk.rs"]
pub mod rmap_walk;
