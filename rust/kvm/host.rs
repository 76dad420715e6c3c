// SPDX-License-Identifier: GPL-2.0

//! What this host offers the module, read once at load: whether the CPU
//! counts a word's bits in one instruction (x86 POPCNT), and whether the
//! module's own MMU code (the masked write-protect's walks,
//! write-protect-all) may serve here.

use super::bindings;
#[cfg(CONFIG_X86)]
use super::popcnt;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

static OWN_MMU_CODE: AtomicBool = AtomicBool::new(false);

/// Reads the host's facts, once, at module load, before any VM can bind.
pub(crate) fn init() {
    let mut host = MaybeUninit::<bindings::kd_host>::uninit();
    // SAFETY: the shim writes the whole struct (on arm64 it also works out
    // what the stage-2 walk needs of the linear map, which no walk reads
    // before a VM binds).
    let host = unsafe {
        bindings::kd_host_init(host.as_mut_ptr());
        host.assume_init()
    };
    #[cfg(CONFIG_X86)]
    {
        popcnt::init(host.popcnt);
        // Only what these machines test: AMD SVM (QEMU's -cpu max).  Intel
        // VMX (EPT with A/D bits, PML, which logs by clearing D bits)
        // would be served by the same W-based mechanisms, but untested:
        // refused.
        OWN_MMU_CODE.store(host.svm, Ordering::Relaxed);
    }
    #[cfg(CONFIG_ARM64)]
    {
        // Not with nested virt (the shadow stage-2 MMUs of nested guests)
        // nor protected KVM (whose hypervisor owns the stage 2): neither's
        // tables are the ones the walk and write-protect-all know.
        OWN_MMU_CODE.store(!host.nested_virt && !host.protected_kvm, Ordering::Relaxed);
    }
}

/// Whether the module's own MMU code may serve on this host; else KVM's
/// function protects every masked word, and write-protect-all is refused.
#[inline(always)]
pub(crate) fn own_mmu_code() -> bool {
    OWN_MMU_CODE.load(Ordering::Relaxed)
}
