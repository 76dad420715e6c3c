// SPDX-License-Identifier: GPL-2.0

//! A memslot's dirty bitmap shared with user space
//! (`KVM_CAP_DIRTY_SHARED_BITMAP`, `KVM_GET_DIRTY_BITMAP_FD`,
//! Documentation/shared-bitmap.rst): the capability, the ioctl that hands out a
//! bitmap's file, the allocation and the free of every dirty bitmap of a VM
//! that enabled it, and the file's `mmap(2)`, page faults, `read(2)` and
//! release.
//!
//! The protocol user space follows (scan the mapping with an exchange per
//! word, then `KVM_WRITE_PROTECT_ALL_MEM`, then copy) and why it loses no
//! page are `crate::algo::shared_bitmap`'s; nothing of it runs here: KVM
//! marks pages, GET and CLEAR harvest, write-protect-all protects, as for
//! any VM.

use super::{to_c, CValue};
use crate::algo::shared_bitmap::{check_enable, check_fd_request, EnableFacts, VmFacts};
use crate::kvm::bindings;
use crate::kvm::shared_bitmap::{page_size, refused, BitmapFile, FaultAt, VmBitmaps};
use crate::kvm::uapi::{DirtyBitmapFd, EnableCap};
use crate::kvm::vm::{SlotsLockGuard, Vm};
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::ffi::{c_int, c_long, c_ulong};
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

/// A new file descriptor, as the ioctl returns it.
struct Fd(c_int);

impl CValue for Fd {
    fn c_value(self) -> c_int {
        self.0
    }
}

/// Bytes `read(2)` copied: at most a bitmap's, 256 MiB.
struct Bytes(usize);

impl CValue for Bytes {
    fn c_value(self) -> c_int {
        self.0.min(c_int::MAX as usize) as c_int
    }
}

/// `KVM_CHECK_EXTENSION(KVM_CAP_DIRTY_SHARED_BITMAP)` on a VM: 1 when the
/// VM could enable it, i.e. it offers `KVM_CAP_DIRTY_WP_ALL`.
///
/// # Safety
///
/// KVM calls it for the VM ioctl, on a live VM.
#[no_mangle]
unsafe extern "C" fn kd_rs_sbm_check_extension(kvm: *mut bindings::kvm) -> c_int {
    // SAFETY: KVM's contract above.
    let vm = unsafe { Vm::from_raw(kvm) };
    to_c(Ok(super::wp_all::supported(vm).is_some()))
}

/// `KVM_ENABLE_CAP(KVM_CAP_DIRTY_SHARED_BITMAP)`.
///
/// # Safety
///
/// KVM calls it for the VM ioctl, on a live VM, without `slots_lock`;
/// `cap` is the ioctl's argument, copied into the kernel.
#[no_mangle]
unsafe extern "C" fn kd_rs_sbm_enable_cap(
    kvm: *mut bindings::kvm,
    cap: *mut bindings::kvm_enable_cap,
) -> c_int {
    // SAFETY: KVM's contract above.
    let (vm, cap, guard) = unsafe {
        (
            Vm::from_raw(kvm),
            EnableCap::from_raw(cap),
            SlotsLockGuard::lock(kvm),
        )
    };
    to_c(enable_cap(vm, cap, guard))
}

/// Under `slots_lock`, which memslot changes hold: no bitmap is allocated
/// while the VM is checked and the registry made.
fn enable_cap(vm: Vm<'_>, cap: &EnableCap, mut guard: SlotsLockGuard) -> Result {
    let args_zero = cap.flags == 0 && cap.args.iter().all(|&arg| arg == 0);
    let mut slots = guard.vm();
    let wp = vm.wp();
    let facts = EnableFacts {
        wp_all: wp.is_on(),
        no_harvest_wp: wp.harvest_without_wp(),
        enabled: slots.bitmaps().enabled(),
        any_bitmap: slots.any_dirty_bitmap(),
    };
    check_enable(args_zero, &facts).map_err(|refusal| refused(refusal.errno()))?;
    slots.bitmaps().enable()
}

/// `KVM_GET_DIRTY_BITMAP_FD`: a new file of the bitmap the slot has now.
///
/// # Safety
///
/// KVM calls it for the VM ioctl, on a live VM, without `slots_lock`;
/// `arg` is the ioctl's user pointer.
#[no_mangle]
unsafe extern "C" fn kd_rs_get_dirty_bitmap_fd(kvm: *mut bindings::kvm, arg: c_ulong) -> c_long {
    // SAFETY: KVM's contract above.
    let guard = unsafe { SlotsLockGuard::lock(kvm) };
    to_c(get_dirty_bitmap_fd(guard, arg)) as c_long
}

/// Under `slots_lock`: the slot cannot let go of its bitmap while its file
/// is made.  Refusals in the order of the interface's table.
fn get_dirty_bitmap_fd(mut guard: SlotsLockGuard, arg: c_ulong) -> Result<Fd> {
    let (mut reader, mut writer) =
        UserSlice::new(arg, core::mem::size_of::<DirtyBitmapFd>()).reader_writer();
    let mut req: DirtyBitmapFd = reader.read()?;
    let mut slots = guard.vm();
    let (nr_as_ids, user_mem_slots) = slots.slot_limits();
    let facts = VmFacts {
        enabled: slots.bitmaps().enabled(),
        uses_bitmap: slots.uses_dirty_bitmap(),
        nr_as_ids,
        user_mem_slots,
    };
    let mut named = None;
    let layout = check_fd_request(
        &facts,
        req.slot,
        req.flags,
        req.pad,
        page_size(),
        |as_id, id| {
            let slot = slots.named_slot(as_id, id);
            let facts = slot.facts;
            named = Some(slot);
            facts
        },
    )
    .map_err(|refusal| refused(refusal.errno()))?;
    // check_fd_request() looked the slot up before it accepted it.
    let named = named.ok_or(EINVAL)?;
    let fd = slots.bitmaps().new_fd(&named)?;
    req.npages = layout.npages();
    req.mmap_size = layout.map_bytes();
    // Dropped on failure: the descriptor and the file go.
    writer.write(&req)?;
    Ok(Fd(fd.install()))
}

/// `->alloc_dirty_bitmap()`: the module's bitmap for a slot of a VM that
/// enabled the capability, else KVM's (`-ENOIOCTLCMD`).
///
/// # Safety
///
/// KVM calls it with `slots_lock` held, on a live VM, for a memslot of
/// `npages` pages being made, whose `dirty_bitmap` `bitmap` points to.
#[no_mangle]
unsafe extern "C" fn kd_rs_alloc_dirty_bitmap(
    kvm: *mut bindings::kvm,
    npages: u64,
    bitmap: *mut *mut c_ulong,
) -> c_int {
    // SAFETY: KVM's contract above: slots_lock makes this the only view of
    // the VM's bitmaps.
    let (vm, mut bitmaps, bitmap) = unsafe {
        let vm = Vm::from_raw(kvm);
        (vm, VmBitmaps::new(vm.wp()), &mut *bitmap)
    };
    to_c(alloc_dirty_bitmap(vm, &mut bitmaps, npages).map(|live| *bitmap = live.as_ptr().cast()))
}

fn alloc_dirty_bitmap(
    vm: Vm<'_>,
    bitmaps: &mut VmBitmaps<'_>,
    npages: u64,
) -> Result<NonNull<usize>> {
    bitmaps.registry().ok_or(ENOIOCTLCMD)?.alloc(vm, npages)
}

/// `->free_dirty_bitmap()`: a slot lets go of its bitmap.  Retires it if
/// it is the module's (zaps its mappings; frees the pages unless a file
/// holds them) and says so; else KVM frees it.
///
/// # Safety
///
/// KVM calls it on a live VM, with `slots_lock` held or while it destroys
/// the VM, for the bitmap `bitmap` of a memslot no vCPU or KVM path can
/// reach any more.
#[no_mangle]
unsafe extern "C" fn kd_rs_free_dirty_bitmap(
    kvm: *mut bindings::kvm,
    bitmap: *mut c_ulong,
) -> bool {
    // SAFETY: KVM's contract above: slots_lock, or the VM's destruction,
    // makes this the only view of the VM's bitmaps.
    let mut bitmaps = unsafe { VmBitmaps::new(Vm::from_raw(kvm).wp()) };
    free_dirty_bitmap(&mut bitmaps, bitmap.cast())
}

fn free_dirty_bitmap(bitmaps: &mut VmBitmaps<'_>, live: *mut usize) -> bool {
    bitmaps
        .registry()
        .is_some_and(|registry| registry.retire(live))
}

/// `mmap(2)` of a bitmap's file: allowed (the shim then sets the flags
/// `check_map()` names), or refused.
///
/// # Safety
///
/// `private` is the private data of a shared bitmap's file, which the
/// caller's `mmap` holds; `map` describes the new mapping.
#[no_mangle]
unsafe extern "C" fn kd_rs_sbm_mmap(
    private: *mut c_void,
    map: *const bindings::kd_sbm_map,
) -> c_int {
    // SAFETY: the contract above.
    let (file, map) = unsafe { (BitmapFile::from_raw(private), &*map) };
    to_c(file.map(map))
}

/// A page fault on a mapping of a bitmap's file: 0 once the page is
/// mapped, `-EFAULT` for `SIGBUS`, or another -errno.
///
/// # Safety
///
/// `private` is the private data of the file `vma` maps, faulting at
/// `addr` (page `pgoff` of the file) with `mmap_lock` held.
#[no_mangle]
unsafe extern "C" fn kd_rs_sbm_fault(
    private: *mut c_void,
    vma: *mut bindings::vm_area_struct,
    addr: u64,
    pgoff: u64,
) -> c_int {
    // SAFETY: the contract above; the mapping holds the file.
    let (file, at) = unsafe {
        (
            BitmapFile::from_raw(private),
            FaultAt::new(vma, addr, pgoff),
        )
    };
    to_c(file.fault(at))
}

/// `read(2)` and `pread(2)` of a bitmap's file: the bytes read, or -errno.
///
/// # Safety
///
/// `private` is the private data of a shared bitmap's file, which the
/// caller's `read` holds; `user_buf` is the user's buffer.
#[no_mangle]
unsafe extern "C" fn kd_rs_sbm_read(
    private: *mut c_void,
    user_buf: u64,
    count: u64,
    offset: u64,
) -> c_long {
    // SAFETY: the contract above.
    let file = unsafe { BitmapFile::from_raw(private) };
    to_c(file.read(user_buf, count, offset).map(Bytes)) as c_long
}

/// A bitmap's file is released.
///
/// # Safety
///
/// `private` and `mapping` are the private data and `f_mapping` of a
/// shared bitmap's file, being released; called once per file.
#[no_mangle]
unsafe extern "C" fn kd_rs_sbm_release(
    private: *mut c_void,
    mapping: *mut bindings::address_space,
) {
    // SAFETY: the contract above.
    unsafe { BitmapFile::release(private, mapping) }
}
