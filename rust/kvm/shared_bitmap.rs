// SPDX-License-Identifier: GPL-2.0

//! The dirty bitmaps a VM with `KVM_CAP_DIRTY_SHARED_BITMAP` shares with
//! its VMM (Documentation/shared-bitmap.rst): each one ([`SharedBitmap`])
//! with its pages, its lock and its files, and the VM's registry of them
//! ([`VmBitmaps`]).
//!
//! What is allowed and when the pages go is `crate::algo::shared_bitmap`'s
//! (`check_map`, `fault`, `check_read`, `Lifetime`); here are the pages,
//! the files and the locks that make those decisions hold:
//!
//! - the bitmap's mutex orders the fault handler's insert against the
//!   retirement's zap: a fault decides and maps the page while it holds
//!   it, a retirement marks the bitmap retired and zaps every file's
//!   mappings while it holds it, so no page table entry of a retired
//!   bitmap survives (lock order: `slots_lock`, `mmap_lock` -> the bitmap's
//!   mutex -> `i_mmap_rwsem` -> page table lock; nothing takes `slots_lock`
//!   or `mmap_lock` under it);
//! - the pages are freed when the slot and every file have let go of them,
//!   once ([`Lifetime`]): a mapping holds its file, so no mapping and no
//!   `read(2)` reaches freed memory;
//! - the registry lives in `kvm->dirty_vm.priv` and is read and changed
//!   only with the memslots held still (`slots_lock`, or the VM being
//!   destroyed), as the memslots' own `dirty_bitmap` pointers are.

use super::bindings;
use super::counters::{self, Counter};
use super::vm::{SlotsLocked, Vm};
use super::wp_all::VmWpState;
use crate::algo::shared_bitmap::{
    self as algo, check_map, check_read, drain, restore, Fault, Layout, Lifetime, MapRequest, Open,
    SlotFacts,
};
use core::ffi::c_void;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use kernel::alloc::KVec;
use kernel::error::from_err_ptr;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNode};
use kernel::sync::{new_mutex, Arc, ArcBorrow, Mutex};

/// The page size the bitmaps are laid out and mapped in.
const PAGE: u64 = PAGE_SIZE as u64;
const WORD_BYTES: usize = core::mem::size_of::<usize>();

// The algorithm's errno values are the kernel's.
const _: () = {
    use kernel::bindings as k;
    assert!(algo::errno::ENOENT == k::ENOENT as i32);
    assert!(algo::errno::EIO == k::EIO as i32);
    assert!(algo::errno::ENXIO == k::ENXIO as i32);
    assert!(algo::errno::ENODEV == k::ENODEV as i32);
    assert!(algo::errno::EINVAL == k::EINVAL as i32);
    assert!(algo::errno::EBUSY == k::EBUSY as i32);
    assert!(algo::errno::EEXIST == k::EEXIST as i32);
    assert!(algo::errno::EOPNOTSUPP == k::EOPNOTSUPP as i32);
};

/// A refusal of the algorithm, as the kernel's error.
pub(crate) fn refused(errno: i32) -> Error {
    Error::from_errno(-errno)
}

/// The allocation of a shared bitmap ([`Layout`]), freed when dropped.
/// `shared_bitmap_allocs` and `shared_bitmap_frees` count these, so they
/// are equal once every area is gone, whichever path let go of it (the
/// holders' last release, or a failure before any slot saw it).
struct Area(NonNull<u8>);

// SAFETY: a vmalloc area, freed from whichever thread drops it.
unsafe impl Send for Area {}

impl Area {
    fn new(layout: &Layout) -> Result<Self> {
        // SAFETY: a plain allocation; NULL on failure.
        let area = unsafe { bindings::kd_vmalloc_zeroed(layout.alloc_bytes()) };
        let area = NonNull::new(area.cast()).map(Area).ok_or(ENOMEM)?;
        counters::add(Counter::KD_SBM_ALLOCS, 1);
        Ok(area)
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: allocated by `new`, freed once here.
        unsafe { bindings::kd_vfree(self.0.as_ptr().cast()) };
        counters::add(Counter::KD_SBM_FREES, 1);
    }
}

/// The VM's `mm`, grabbed (the struct, not the address space) while the
/// bitmap exists: `read(2)` and `mmap(2)` are the VM's process's, which a
/// comparison with `current->mm` tells, and a grabbed `mm` cannot be freed
/// and reused by another process meanwhile.
struct VmMm(NonNull<bindings::mm_struct>);

// SAFETY: only compared with current->mm and dropped, from any thread.
unsafe impl Send for VmMm {}
// SAFETY: as above: `&VmMm` only compares.
unsafe impl Sync for VmMm {}

impl VmMm {
    fn grab(vm: Vm<'_>) -> Self {
        // SAFETY: a live VM, whose kvm->mm lives at least as long.
        let mm = unsafe { bindings::kd_vm_mm_grab(vm.as_raw()) };
        VmMm(NonNull::new(mm).expect("a VM always has an mm"))
    }

    fn is_current(&self) -> bool {
        // SAFETY: compares a pointer with current->mm.
        unsafe { bindings::kd_current_mm_is(self.0.as_ptr()) }
    }
}

impl Drop for VmMm {
    fn drop(&mut self) {
        // SAFETY: grabbed in `grab`, dropped once here.
        unsafe { bindings::kd_mm_drop(self.0.as_ptr()) }
    }
}

/// A file's address space, where its mappings are found to be zapped.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FileMapping(NonNull<bindings::address_space>);

// SAFETY: handed only to unmap_mapping_range(), which locks for itself.
unsafe impl Send for FileMapping {}

/// What the bitmap's mutex keeps.
struct Holders {
    /// Who holds the pages; whether the slot still uses the bitmap.
    lifetime: Lifetime,
    /// The address space of each file `lifetime` counts, from its creation
    /// to its release (each file has an inode of its own).
    files: KVec<FileMapping>,
    /// The pages, until `lifetime` says every holder let go.
    area: Option<Area>,
}

impl Holders {
    fn free_pages(&mut self) {
        self.area = None;
    }
}

/// One memslot's dirty bitmap, shared with user space: KVM marks the live
/// bitmap at the start of the allocation, which user space maps and
/// `read(2)`s; `KVM_GET_DIRTY_LOG` and `KVM_CLEAR_DIRTY_LOG` use the second
/// buffer past the mapped pages ([`Layout`]).  Held by the VM's registry
/// until the slot lets go of it, and by each of its files.
#[pin_data]
pub(crate) struct SharedBitmap {
    /// The start of the allocation, which `holders.area` owns.
    live: NonNull<usize>,
    layout: Layout,
    mm: VmMm,
    #[pin]
    holders: Mutex<Holders>,
}

// SAFETY: the live bitmap is accessed atomically only (by KVM's marks, the
// harvests' exchanges, user space and `read(2)`), the second buffer only by
// the holder of slots_lock (GET, CLEAR); the rest is under the mutex or
// immutable.
unsafe impl Send for SharedBitmap {}
// SAFETY: as above.
unsafe impl Sync for SharedBitmap {}

impl SharedBitmap {
    /// A new bitmap for a slot of `npages` pages of `vm`.
    fn new(vm: Vm<'_>, npages: u64) -> Result<Arc<Self>> {
        let layout = Layout::new(npages, PAGE).ok_or(EINVAL)?;
        let area = Area::new(&layout)?;
        let live = area.0.cast();
        Arc::pin_init(
            pin_init!(SharedBitmap {
                live,
                layout,
                mm: VmMm::grab(vm),
                holders <- new_mutex!(
                    Holders {
                        lifetime: Lifetime::new(),
                        files: KVec::new(),
                        area: Some(area),
                    },
                    "kvm_dirty_shared_bitmap"
                ),
            }),
            GFP_KERNEL,
        )
    }

    /// The live bitmap.
    ///
    /// # Safety
    ///
    /// The pages are still allocated: the caller holds the slot's use of
    /// them (the bitmap is not retired) or a file of the bitmap.
    unsafe fn live(&self) -> &[AtomicUsize] {
        // SAFETY: `words()` longs at the start of the allocation, which the
        // caller keeps allocated; every access to them is atomic.
        unsafe {
            core::slice::from_raw_parts(
                self.live.as_ptr().cast::<AtomicUsize>(),
                self.layout.words(),
            )
        }
    }

    /// The slot lets go of the bitmap: KVM made the old memslot
    /// unreachable, so no bit will be set any more.  Every mapping of its
    /// files is zapped before the lock is dropped (a fault after it gets
    /// `SIGBUS`), and the pages are freed unless a file still holds them.
    fn retire(&self) {
        let mut holders = self.holders.lock();
        let retire = holders.lifetime.retire();
        counters::add(Counter::KD_SBM_RETIRED, 1);
        if retire.zap {
            for file in holders.files.iter() {
                // SAFETY: the address space of a file not yet released
                // (released files leave the list under this lock).
                unsafe { bindings::kd_sbm_zap(file.0.as_ptr()) };
            }
            counters::add(Counter::KD_SBM_ZAPS, holders.files.len() as u64);
        }
        if retire.free {
            holders.free_pages();
        }
    }

    /// A new file of the bitmap, which holds a reference on it as its
    /// private data; its descriptor is the caller's to install.  The caller
    /// holds `slots_lock`, under which the slot cannot let go of the bitmap.
    fn new_file(self: &Arc<Self>) -> Result<NonNull<bindings::file>> {
        let mut holders = self.holders.lock();
        if holders.lifetime.open_file() == Open::Retired {
            return Err(ENOENT);
        }
        holders.files.reserve(1, GFP_KERNEL)?;
        let private = Arc::into_raw(self.clone());
        let mut mapping = core::ptr::null_mut();
        // SAFETY: `private` is a reference on the bitmap, which the file's
        // release gives back (kd_rs_sbm_release); `mapping` is written on
        // success.  No lock of user space's is taken (no mmap_lock).
        let file = unsafe {
            bindings::kd_sbm_file_create(
                private.cast_mut().cast(),
                self.layout.live_bytes(),
                &mut mapping,
            )
        };
        let file = match from_err_ptr(file) {
            Ok(file) => file,
            Err(e) => {
                // SAFETY: the reference made above, which no file took.
                drop(unsafe { Arc::from_raw(private) });
                return Err(e);
            }
        };
        // Counted once it is in the list: the release looks for it there.
        let mapping = FileMapping(NonNull::new(mapping).expect("a file has an address space"));
        if let Err(e) = holders.files.push(mapping, GFP_KERNEL) {
            // Not expected (room was reserved above).  The file goes: its
            // release, deferred past this lock, gives the reference back
            // and, not finding it in the list, counts nothing.
            // SAFETY: the file made above, whose only reference is ours.
            unsafe { bindings::kd_fput(file) };
            return Err(e.into());
        }
        holders.lifetime.file_made();
        counters::add(Counter::KD_SBM_FILES, 1);
        Ok(NonNull::new(file).expect("not an error pointer, so a file"))
    }

    /// A file's last reference is gone (every descriptor closed, every
    /// mapping unmapped): the pages are freed if the slot let go too.
    fn release_file(&self, mapping: NonNull<bindings::address_space>) {
        let mut holders = self.holders.lock();
        let Some(i) = holders.files.iter().position(|f| f.0 == mapping) else {
            // A file whose creation failed after it was made: not counted.
            return;
        };
        let last = holders.files.len() - 1;
        holders.files.as_mut_slice().swap(i, last);
        // SAFETY: shrinks by the element just moved last, a `Copy` type
        // with nothing to drop.
        unsafe { holders.files.set_len(last) };
        if holders.lifetime.release_file() {
            holders.free_pages();
        }
    }

    /// `mmap(2)` of a file of the bitmap: allowed, or the refusal's error.
    fn map(&self, map: &bindings::kd_sbm_map) -> Result {
        let req = MapRequest {
            pgoff: map.pgoff,
            pages: map.pages,
            shared: map.shared,
            exec: map.exec,
            same_mm: self.mm.is_current(),
        };
        let state = self.holders.lock().lifetime.state();
        match check_map(&self.layout, state, &req) {
            Ok(()) => {
                counters::add(Counter::KD_SBM_MAPS, 1);
                Ok(())
            }
            Err(refusal) => {
                counters::add(Counter::KD_SBM_MAP_REFUSED, 1);
                Err(refused(refusal.errno()))
            }
        }
    }

    /// A page fault at page `pgoff` of the bitmap, at `addr` of `vma`:
    /// the page is mapped here, under the mutex, or `EFAULT` (`SIGBUS`).
    ///
    /// # Safety
    ///
    /// `vma` is a mapping of a file of this bitmap, faulting at `addr`,
    /// with `mmap_lock` held (the fault handler's context).
    unsafe fn fault(&self, vma: *mut bindings::vm_area_struct, addr: u64, pgoff: u64) -> Result {
        let holders = self.holders.lock();
        match algo::fault(&self.layout, holders.lifetime.state(), pgoff) {
            Fault::Insert { page } => {
                // SAFETY: a page of the allocation (`fault()` answers only
                // pages below `map_pages()`), allocated while the bitmap is
                // live; `vma` and `addr` are the caller's.
                let r = unsafe {
                    let kaddr = self.live.as_ptr().cast::<u8>().add((page * PAGE) as usize);
                    bindings::kd_sbm_insert_page(vma, addr, kaddr.cast())
                };
                match r {
                    0 => counters::add(Counter::KD_SBM_FAULTS, 1),
                    // Another thread's fault mapped it first.
                    r if r == -(kernel::bindings::EBUSY as i32) => {}
                    r => return Err(Error::from_errno(r)),
                }
                Ok(())
            }
            Fault::SigBus => {
                counters::add(Counter::KD_SBM_SIGBUS, 1);
                Err(EFAULT)
            }
        }
    }

    /// `read(2)` of `count` bytes at byte `offset` into the user buffer at
    /// `user`: each word taken with an exchange and its old value copied
    /// out.  Words whose copy failed are given back (`restore`), so that a
    /// failed read loses no bit.  Returns the bytes copied.
    ///
    /// # Safety
    ///
    /// The caller holds a file of this bitmap.
    unsafe fn read(&self, user: u64, count: u64, offset: u64) -> Result<usize> {
        const CHUNK: usize = 64;
        let (first, words) = check_read(&self.layout, self.mm.is_current(), offset, count)
            .map_err(|refusal| refused(refusal.errno()))?;
        // SAFETY: the caller's file holds the pages.
        let live = unsafe { self.live() };
        let mut taken = [0usize; CHUNK];
        let mut done = 0;
        while done < words {
            let n = CHUNK.min(words - done);
            let stats = drain(live, first + done, &mut taken[..n]);
            // SAFETY: `taken` is `n` initialised words; u8 has no alignment.
            let bytes =
                unsafe { core::slice::from_raw_parts(taken.as_ptr().cast::<u8>(), n * WORD_BYTES) };
            let user_at = user as usize + done * WORD_BYTES;
            if kernel::uaccess::UserSlice::new(user_at, bytes.len())
                .writer()
                .write_slice(bytes)
                .is_err()
            {
                restore(live, first + done, &taken[..n]);
                counters::add(Counter::KD_SBM_READ_RESTORED, stats.dirty_words);
                if done == 0 {
                    return Err(EFAULT);
                }
                break;
            }
            counters::add(Counter::KD_SBM_READ_WORDS, n as u64);
            counters::add(Counter::KD_SBM_READ_PAGES, stats.pages);
            done += n;
            if done % (CHUNK * 64) == 0 {
                // SAFETY: a plain call; read(2) may sleep.
                unsafe { bindings::kd_cond_resched() };
            }
        }
        Ok(done * WORD_BYTES)
    }
}

/// A file of a shared bitmap, as the file operations see it: its private
/// data, a reference on the bitmap.
pub(crate) struct BitmapFile<'a>(ArcBorrow<'a, SharedBitmap>);

impl<'a> BitmapFile<'a> {
    /// # Safety
    ///
    /// `private` is the private data of a file [`SharedBitmap::new_file`]
    /// made, which the caller holds for `'a` (a file operation, or the
    /// fault of a mapping of it).
    pub(crate) unsafe fn from_raw(private: *mut c_void) -> Self {
        // SAFETY: the file's reference, made by `Arc::into_raw` and given
        // back only at its release.
        BitmapFile(unsafe { ArcBorrow::from_raw(private.cast::<SharedBitmap>().cast_const()) })
    }

    /// `mmap(2)`: allowed, or why not.
    pub(crate) fn map(&self, map: &bindings::kd_sbm_map) -> Result {
        self.0.map(map)
    }

    /// A fault on a mapping of the file.
    pub(crate) fn fault(&self, at: FaultAt) -> Result {
        // SAFETY: `at` is a fault on a mapping of a file of the bitmap
        // (its constructor's contract): this file's, whose private data
        // `self` is.
        unsafe { self.0.fault(at.vma, at.addr, at.pgoff) }
    }

    /// `read(2)`.
    pub(crate) fn read(&self, user: u64, count: u64, offset: u64) -> Result<usize> {
        // SAFETY: this file holds the pages.
        unsafe { self.0.read(user, count, offset) }
    }

    /// The file's release: its last reference is gone (every descriptor
    /// closed, every mapping unmapped); gives its reference on the bitmap
    /// back.
    ///
    /// # Safety
    ///
    /// `private` and `mapping` are the private data and `f_mapping` of a
    /// file [`SharedBitmap::new_file`] made, being released; called once.
    pub(crate) unsafe fn release(private: *mut c_void, mapping: *mut bindings::address_space) {
        // SAFETY: the reference `new_file` gave the file, given back once.
        let bitmap = unsafe { Arc::from_raw(private.cast::<SharedBitmap>().cast_const()) };
        if let Some(mapping) = NonNull::new(mapping) {
            bitmap.release_file(mapping);
        }
    }
}

/// The VM's shared bitmaps, by the address of their live bitmap (a
/// memslot's `dirty_bitmap`).
pub(crate) struct Registry {
    bitmaps: RBTree<usize, Arc<SharedBitmap>>,
}

impl Registry {
    /// A bitmap for a new dirty-logged slot of `npages` pages: its live
    /// bitmap, for the memslot's `dirty_bitmap`.
    pub(crate) fn alloc(&mut self, vm: Vm<'_>, npages: u64) -> Result<NonNull<usize>> {
        let bitmap = SharedBitmap::new(vm, npages)?;
        let live = bitmap.live;
        // On failure `bitmap` goes with its pages: no slot ever saw them.
        let node = RBTreeNode::new(live.as_ptr() as usize, bitmap, GFP_KERNEL)?;
        self.bitmaps.insert(node);
        Ok(live)
    }

    /// The slot let go of the bitmap at `live`: retired, and forgotten.
    /// False if it is not one of the module's.
    pub(crate) fn retire(&mut self, live: *mut usize) -> bool {
        match self.bitmaps.remove(&(live as usize)) {
            Some(bitmap) => {
                bitmap.retire();
                true
            }
            None => false,
        }
    }

    /// The bitmap whose live bitmap is at `live`.
    fn find(&self, live: NonNull<usize>) -> Option<&Arc<SharedBitmap>> {
        self.bitmaps.get(&(live.as_ptr() as usize))
    }
}

/// `kvm->dirty_vm.priv`: the VM's [`Registry`], made when it enables the
/// capability, freed when it is destroyed; null before.  Read and written
/// only with the memslots held still, hence `&mut` for a change.
pub(crate) struct VmBitmaps<'a> {
    slot: &'a AtomicPtr<c_void>,
}

impl<'a> VmBitmaps<'a> {
    /// # Safety
    ///
    /// `state` is a live VM's `kvm->dirty_vm`; for `'a` the caller holds
    /// the VM's `slots_lock`, or KVM destroys the VM (nothing else runs on
    /// it); no other `VmBitmaps` of the VM is used meanwhile.
    pub(crate) unsafe fn new(state: &'a VmWpState) -> Self {
        VmBitmaps {
            slot: &state.module_priv,
        }
    }

    /// The registry, if the VM enabled the capability.
    pub(crate) fn registry(&mut self) -> Option<&mut Registry> {
        // Relaxed: written and read under the same exclusion.
        let registry = self.slot.load(Ordering::Relaxed).cast::<Registry>();
        // SAFETY: null, or the registry `enable` leaked, which nothing
        // else accesses while `self` is borrowed (the constructor's
        // exclusion).
        unsafe { registry.as_mut() }
    }

    /// Whether the VM enabled the capability.
    pub(crate) fn enabled(&self) -> bool {
        !self.slot.load(Ordering::Relaxed).is_null()
    }

    /// Enables the capability: from now on the module allocates every
    /// dirty bitmap of the VM.
    pub(crate) fn enable(&mut self) -> Result {
        let registry = KBox::new(
            Registry {
                bitmaps: RBTree::new(),
            },
            GFP_KERNEL,
        )?;
        self.slot
            .store(KBox::into_raw(registry).cast(), Ordering::Relaxed);
        counters::add(Counter::KD_SBM_VMS, 1);
        Ok(())
    }

    /// The VM is destroyed, its memslots gone (each retired its bitmap):
    /// the registry goes.
    pub(crate) fn destroy(&mut self) {
        let registry = self.slot.swap(core::ptr::null_mut(), Ordering::Relaxed);
        if registry.is_null() {
            return;
        }
        // SAFETY: made by `enable` with `KBox::into_raw`, taken back once.
        let registry = unsafe { KBox::from_raw(registry.cast::<Registry>()) };
        if registry.bitmaps.iter().next().is_some() {
            // A memslot that never let go of its bitmap would still point
            // at it: keep the pages rather than free them under it.
            pr_warn!("VM destroyed with shared dirty bitmaps not retired\n");
            core::mem::forget(registry);
        }
    }
}

/// Where the second buffer of a shared bitmap of `npages` pages is, given
/// its live bitmap: past the mapped pages, never mapped.
pub(crate) fn buffer_of(live: NonNull<usize>, npages: u64) -> *mut usize {
    let layout = Layout::new(npages, PAGE).expect("a memslot's size is a valid layout");
    // SAFETY: within the allocation `Layout::alloc_bytes()` sized.
    unsafe {
        live.as_ptr()
            .cast::<u8>()
            .add(layout.buffer_offset() as usize)
    }
    .cast()
}

/// What `KVM_GET_DIRTY_BITMAP_FD` learns of the slot it names.
pub(crate) struct NamedSlot {
    pub(crate) facts: SlotFacts,
    /// The slot's live bitmap, if it has one.
    live: Option<NonNull<usize>>,
}

impl SlotsLocked<'_> {
    /// The VM's shared bitmaps (slots_lock is held).
    pub(crate) fn bitmaps(&mut self) -> VmBitmaps<'_> {
        // SAFETY: the VM's own state, slots_lock held while `self` is
        // borrowed, which makes this the only VmBitmaps meanwhile.
        unsafe { VmBitmaps::new(self.wp_state()) }
    }

    /// Whether a memslot of the VM has a dirty bitmap.
    pub(crate) fn any_dirty_bitmap(&self) -> bool {
        // SAFETY: live VM, slots_lock held.
        unsafe { bindings::kd_any_dirty_bitmap(self.raw()) }
    }

    /// The memslot `as_id`, `id`, both in range.
    pub(crate) fn named_slot(&self, as_id: u32, id: u32) -> NamedSlot {
        let mut info = core::mem::MaybeUninit::<bindings::kd_memslot>::uninit();
        // SAFETY: live VM, slots_lock held; the shim writes the whole
        // struct.
        let info = unsafe {
            bindings::kd_memslot(self.raw(), as_id << 16 | id, info.as_mut_ptr());
            info.assume_init()
        };
        let live = NonNull::new(info.dirty_bitmap.cast::<usize>());
        NamedSlot {
            facts: if info.slot.is_null() {
                SlotFacts::Missing
            } else {
                SlotFacts::Present {
                    npages: info.npages,
                    logging: info.dirty_logging && live.is_some(),
                    read_only: info.read_only,
                }
            },
            live,
        }
    }
}

impl VmBitmaps<'_> {
    /// A descriptor of a new file of `slot`'s bitmap, the slot having
    /// passed `check_fd_request()`, not yet installed.
    pub(crate) fn new_fd(&mut self, slot: &NamedSlot) -> Result<NewFd> {
        let registry = self.registry().ok_or(ENOENT)?;
        // Every bitmap of an enabled VM is the module's: the capability
        // is refused once a memslot has one (EBUSY).
        let bitmap = slot
            .live
            .and_then(|live| registry.find(live))
            .ok_or(ENOENT)?;
        // SAFETY: a plain call; a descriptor or -errno (EMFILE).
        let fd = unsafe { bindings::kd_fd_reserve() };
        if fd < 0 {
            return Err(Error::from_errno(fd));
        }
        match bitmap.new_file() {
            Ok(file) => Ok(NewFd { fd, file }),
            Err(e) => {
                // SAFETY: reserved above, given back once.
                unsafe { bindings::kd_fd_unreserve(fd) };
                Err(e)
            }
        }
    }
}

/// A descriptor reserved for a new file, installed by [`NewFd::install`];
/// dropped, both go (the file's release gives back what it held).
pub(crate) struct NewFd {
    fd: i32,
    file: NonNull<bindings::file>,
}

impl NewFd {
    /// Installs the descriptor, which user space can use from now on.
    pub(crate) fn install(self) -> i32 {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: a reserved descriptor and our reference on a new file,
        // both handed to the descriptor table once.
        unsafe { bindings::kd_fd_install(this.fd, this.file.as_ptr()) };
        counters::add(Counter::KD_SBM_FDS, 1);
        this.fd
    }
}

impl Drop for NewFd {
    fn drop(&mut self) {
        // SAFETY: our reference on the file and the reserved descriptor,
        // given back once (not installed).
        unsafe {
            bindings::kd_fput(self.file.as_ptr());
            bindings::kd_fd_unreserve(self.fd);
        }
    }
}

/// Where a fault on a mapping of a shared bitmap's file is.
pub(crate) struct FaultAt {
    vma: *mut bindings::vm_area_struct,
    addr: u64,
    pgoff: u64,
}

impl FaultAt {
    /// # Safety
    ///
    /// `vma` maps a file of a shared bitmap and faults at `addr`, page
    /// `pgoff` of the file, with `mmap_lock` held (the fault handler's
    /// context), for as long as the value is used.
    pub(crate) unsafe fn new(vma: *mut bindings::vm_area_struct, addr: u64, pgoff: u64) -> Self {
        FaultAt { vma, addr, pgoff }
    }
}

/// The page size the bitmaps are laid out in, for `check_fd_request()`.
pub(crate) const fn page_size() -> u64 {
    PAGE
}
