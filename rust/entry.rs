// SPDX-License-Identifier: GPL-2.0

//! The entry points KVM calls, through the ops table the shim registers
//! (include/kvm_dirty_shim.h declares each one as C sees it).
//!
//! Each is an `unsafe extern "C" fn` whose `# Safety` section is the
//! contract KVM's hook gives.  It does one thing: turn the raw pointers into
//! safe views with one call into `crate::kvm` (the only `unsafe` block in
//! the function), hand them to safe Rust, which returns a `Result`, and
//! give C its value or a negative errno through [`to_c`], the one place
//! that conversion is made.  The safe Rust each entry runs sits below it in
//! its file, over the views and the algorithms of `crate::algo`.

use kernel::ffi::c_int;
use kernel::prelude::*;

mod clear_dirty_log;
mod get_dirty_log;
mod mark_page_dirty;
mod reset_dirty_rings;
mod shared_bitmap;
mod vm;
mod wp_all;
#[cfg(CONFIG_X86)]
mod wp_all_shadow;
#[cfg(CONFIG_ARM64)]
mod wp_all_stage2;
#[cfg(CONFIG_X86)]
mod wp_all_x86;

/// A successful entry point's value, as C reads it.
trait CValue {
    fn c_value(self) -> c_int;
}

impl CValue for () {
    fn c_value(self) -> c_int {
        0
    }
}

/// A yes or no (`KVM_CHECK_EXTENSION`): 1 or 0.
impl CValue for bool {
    fn c_value(self) -> c_int {
        c_int::from(self)
    }
}

/// A count (of ring entries reset): the ioctl returns an int, and a count
/// never exceeds the rings' entries.
impl CValue for u32 {
    fn c_value(self) -> c_int {
        self.min(c_int::MAX as u32) as c_int
    }
}

/// What an entry point returns to C: its value, or a negative errno.
#[inline(always)]
fn to_c<T: CValue>(result: Result<T>) -> c_int {
    match result {
        Ok(value) => value.c_value(),
        Err(e) => e.to_errno(),
    }
}
