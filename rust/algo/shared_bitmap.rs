// SPDX-License-Identifier: GPL-2.0

//! A memslot's dirty bitmap shared with user space: what the module and a
//! VMM both execute (Documentation/shared-bitmap.rst).
//!
//! "Fast Write Protection" (KVM Forum 2017) ends with a plan: share the
//! bitmap between KVM and user space, which operate it asynchronously and
//! atomically, so that what `KVM_GET_DIRTY_LOG` does moves to user space.
//! With write-protect-all and `KVM_DIRTY_WP_ALL_NO_HARVEST_WP` a GET no
//! longer write-protects anything; what is left of it is an ioctl, a slot
//! lookup, an exchange per word and a copy, for every slot at every sync.
//! Here:
//!
//! - KVM sets a page's bit with an atomic OR ([`mark_dirty`], what
//!   `set_bit_le()` does), as it does today;
//! - user space snapshots and clears each word with an atomic exchange
//!   ([`take_word`], [`scan`]) through its mapping of the bitmap, then calls
//!   `KVM_WRITE_PROTECT_ALL_MEM`, then copies the pages;
//! - a retired bitmap (slot deleted, logging turned off, VM destroyed) is
//!   drained through `read(2)` on its file ([`drain`]).
//!
//! Why that order, and not write-protect-all first: a write between the
//! write-protect-all and the scan faults, sets its bit and makes its page
//! writable; the scan clears the bit, the page is copied, and every later
//! write goes through the writable page without a fault: never reported.
//! Scanned first: a fault marks its page after granting the write
//! permission, or before it with no write-protect-all in between (x86's
//! locked fault holds `mmu_lock` across both), so the write-protect-all
//! that follows the scan taking the mark also follows the permission, and
//! every write through it happened before that write-protect-all returned,
//! before the copy.  A bit set after its word's exchange stays for the next
//! scan.  `tools/dirty-algos/tests/shared_bitmap.rs` checks both against
//! concurrent vCPUs, and over every reachable state of small cases.
//!
//! The rest is the module's: the layout of the allocation it owns for such
//! a bitmap ([`Layout`]), the refusals of the interface ([`check_enable`],
//! [`check_fd_request`], [`check_map`], [`check_read`]), the answer to a
//! page fault on a mapping ([`fault`]) and who keeps the pages
//! ([`Lifetime`]).  Lifetime rule: the pages are freed when the slot and
//! every file of the bitmap have let go of them (a file outlives its
//! mappings, so no mapping reaches freed memory); when the slot lets go,
//! every mapping is zapped first and later faults get `SIGBUS`, so no
//! mapping silently shows a bitmap KVM no longer writes.
//!
//! The bit order is `KVM_GET_DIRTY_LOG`'s: bit `i % 64` of 64-bit word
//! `i / 64` is page `i` of the slot, on the 64-bit little-endian hosts the
//! module serves (x86_64, arm64), where `set_bit_le()` is `set_bit()`.
//!
//! `core` only: this file builds in the kernel module and in the user-space
//! test crate (`tools/dirty-algos`) unchanged.

use core::sync::atomic::{AtomicUsize, Ordering};

/// Pages per bitmap word.
pub const BITS_PER_WORD: usize = usize::BITS as usize;
const WORD_BYTES: u64 = core::mem::size_of::<usize>() as u64;

/// The most pages a memslot may have (`KVM_MEM_MAX_NR_PAGES`): a bitmap of
/// at most 256 MiB.
pub const MAX_NPAGES: u64 = (1 << 31) - 1;

/// The asm-generic errno values the refusals map to (the same on x86_64
/// and arm64).
pub mod errno {
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const ENXIO: i32 = 6;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const EOPNOTSUPP: i32 = 95;
}

/// The allocation the module makes for a shared bitmap: the live bitmap
/// from offset 0, rounded up to whole pages (what user space maps), then
/// the second buffer `KVM_GET_DIRTY_LOG` and `KVM_CLEAR_DIRTY_LOG` use
/// under `slots_lock`, which is never mapped.  KVM's own allocation puts
/// the second buffer right after the live bitmap's last word, so a page
/// of the live bitmap could hold part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    npages: u64,
    page_size: u64,
}

impl Layout {
    /// The layout of a slot of `npages` pages; `None` if `npages` is 0 or
    /// above [`MAX_NPAGES`], or `page_size` is not a power of two of at least
    /// a word.
    pub const fn new(npages: u64, page_size: u64) -> Option<Self> {
        if npages == 0
            || npages > MAX_NPAGES
            || !page_size.is_power_of_two()
            || page_size < WORD_BYTES
        {
            return None;
        }
        Some(Layout { npages, page_size })
    }

    /// Pages of the slot, i.e. meaningful bits.
    pub const fn npages(&self) -> u64 {
        self.npages
    }

    /// Words of the live bitmap (`kvm_dirty_bitmap_bytes()` / 8).
    pub const fn words(&self) -> usize {
        self.npages.div_ceil(BITS_PER_WORD as u64) as usize
    }

    /// Bytes of the live bitmap, as `KVM_GET_DIRTY_LOG` copies them.
    pub const fn live_bytes(&self) -> u64 {
        self.words() as u64 * WORD_BYTES
    }

    /// Bytes user space may map: the live bitmap rounded up to pages.  The
    /// words past [`Self::live_bytes`] and the bits past [`Self::npages`]
    /// are always 0: KVM marks only pages of the slot.
    ///
    /// By mask and shift, `page_size` being a power of two: a division by
    /// it would carry a division-by-zero panic path into the kernel's code
    /// (the fault handler's), which the compiler cannot prove dead.
    pub const fn map_bytes(&self) -> u64 {
        let mask = self.page_size - 1;
        (self.live_bytes() + mask) & !mask
    }

    /// Pages user space may map.
    pub const fn map_pages(&self) -> u64 {
        self.map_bytes() >> self.page_size.trailing_zeros()
    }

    /// Offset of the second buffer: the first byte past what may be mapped.
    pub const fn buffer_offset(&self) -> u64 {
        self.map_bytes()
    }

    /// Bytes to allocate: the mappable pages and the second buffer.
    pub const fn alloc_bytes(&self) -> u64 {
        self.map_bytes() + self.live_bytes()
    }
}

/// Marks page `rel_gfn` of the slot dirty: KVM's `set_bit_le()`, from any
/// context.  Relaxed, as `set_bit()`: user space's exchange of the word
/// finds the bit or leaves it for the next scan, whatever the order.  What
/// the protocol asks of the caller is about write-protect-all, not memory
/// order: if it marks before it grants the write permission, no
/// write-protect-all may fall between the two (x86's fault holds
/// `mmu_lock` across both).
///
/// # Panics
///
/// If `rel_gfn` lies outside `live` (KVM computes it from the slot).
#[inline(always)]
pub fn mark_dirty(live: &[AtomicUsize], rel_gfn: u64) {
    let bits = BITS_PER_WORD as u64;
    live[(rel_gfn / bits) as usize].fetch_or(1 << (rel_gfn % bits), Ordering::Relaxed);
}

/// Snapshots and clears one word: user space's `xchg(&bitmap[i], 0)`.
///
/// A relaxed load first: most words of a large bitmap are clean, and an
/// exchange on each would take every cache line of the bitmap exclusive
/// (and, through the mapping, dirty every page).  A bit set just after the
/// load is not lost: it stays in the word for the next scan.  The exchange
/// is fully ordered, as the kernel's `xchg()`: a bit it takes is gone before
/// the `KVM_WRITE_PROTECT_ALL_MEM` that follows.
#[inline(always)]
pub fn take_word(word: &AtomicUsize) -> usize {
    if word.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    word.swap(0, Ordering::SeqCst)
}

/// What one scan or drain took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Words looked at.
    pub words: u64,
    /// Words that had a bit set.
    pub dirty_words: u64,
    /// Bits taken.
    pub pages: u64,
}

impl ScanStats {
    fn add(&mut self, mask: usize) {
        self.words += 1;
        if mask != 0 {
            self.dirty_words += 1;
            self.pages += u64::from(mask.count_ones());
        }
    }
}

/// User space's scan of a mapped bitmap: takes every word ([`take_word`]) and
/// calls `dirty(first_page, mask)` for each word that had bits set, where
/// `first_page` is the page of bit 0 of `mask`.  Every bit set before the
/// scan reached its word is reported once, to this scan or to the next.
pub fn scan(live: &[AtomicUsize], mut dirty: impl FnMut(u64, usize)) -> ScanStats {
    let mut stats = ScanStats::default();
    for (i, word) in live.iter().enumerate() {
        let mask = take_word(word);
        stats.add(mask);
        if mask != 0 {
            dirty((i * BITS_PER_WORD) as u64, mask);
        }
    }
    stats
}

/// `read(2)` on a bitmap's file: takes the words from `first_word` on into
/// `out`, one [`take_word`] each, so a bit is reported once whether the
/// mapping's scan or the read takes it.  The module copies `out` to user
/// space; it is how the last bits of a retired bitmap are collected.
///
/// # Panics
///
/// If `out` reaches past `live` (the caller's [`check_read`]).
pub fn drain(live: &[AtomicUsize], first_word: usize, out: &mut [usize]) -> ScanStats {
    let mut stats = ScanStats::default();
    for (word, o) in live[first_word..first_word + out.len()].iter().zip(out) {
        *o = take_word(word);
        stats.add(*o);
    }
    stats
}

/// Gives back to the bitmap the words a [`drain`] from `first_word` took
/// into `taken` and could not hand over (the copy to user space failed):
/// an atomic OR, so a bit KVM set meanwhile stays too.  A bit given back is
/// reported again later, which is harmless; a bit dropped would be a page
/// never copied.
///
/// # Panics
///
/// If `taken` reaches past `live`.
pub fn restore(live: &[AtomicUsize], first_word: usize, taken: &[usize]) {
    for (word, &mask) in live[first_word..first_word + taken.len()].iter().zip(taken) {
        if mask != 0 {
            word.fetch_or(mask, Ordering::Relaxed);
        }
    }
}

/// What `KVM_ENABLE_CAP(KVM_CAP_DIRTY_SHARED_BITMAP)` needs to know of the
/// VM, read under `slots_lock` (which memslot changes hold).
#[derive(Clone, Copy, Debug, Default)]
pub struct EnableFacts {
    /// `KVM_CAP_DIRTY_WP_ALL` is enabled.
    pub wp_all: bool,
    /// ... with `KVM_DIRTY_WP_ALL_NO_HARVEST_WP`.
    pub no_harvest_wp: bool,
    /// The capability is already enabled.
    pub enabled: bool,
    /// Some memslot already has a dirty bitmap (KVM's allocation).
    pub any_bitmap: bool,
}

/// Why `KVM_ENABLE_CAP(KVM_CAP_DIRTY_SHARED_BITMAP)` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnableRefusal {
    /// Non-zero `flags` or `args[]` (EINVAL).
    BadArgs,
    /// Already enabled (EEXIST).
    Enabled,
    /// Write-protect-all with `KVM_DIRTY_WP_ALL_NO_HARVEST_WP` is not on: the
    /// protocol's only protection is `KVM_WRITE_PROTECT_ALL_MEM` (EOPNOTSUPP).
    NoWpAll,
    /// A memslot has a bitmap of KVM's making, which cannot be mapped
    /// (EBUSY).
    Bitmaps,
}

impl EnableRefusal {
    pub const fn errno(self) -> i32 {
        match self {
            Self::BadArgs => errno::EINVAL,
            Self::Enabled => errno::EEXIST,
            Self::NoWpAll => errno::EOPNOTSUPP,
            Self::Bitmaps => errno::EBUSY,
        }
    }
}

/// Checks `KVM_ENABLE_CAP(KVM_CAP_DIRTY_SHARED_BITMAP)`; `args_zero` says
/// whether `flags` and every `args[]` are 0.
pub fn check_enable(args_zero: bool, vm: &EnableFacts) -> Result<(), EnableRefusal> {
    if !args_zero {
        return Err(EnableRefusal::BadArgs);
    }
    if vm.enabled {
        return Err(EnableRefusal::Enabled);
    }
    if !vm.wp_all || !vm.no_harvest_wp {
        return Err(EnableRefusal::NoWpAll);
    }
    if vm.any_bitmap {
        return Err(EnableRefusal::Bitmaps);
    }
    Ok(())
}

/// What `KVM_GET_DIRTY_BITMAP_FD` needs to know of the VM, under
/// `slots_lock`.
#[derive(Clone, Copy, Debug)]
pub struct VmFacts {
    /// `KVM_CAP_DIRTY_SHARED_BITMAP` is enabled.
    pub enabled: bool,
    /// `kvm_use_dirty_bitmap()`: false for a dirty ring without bitmap.
    pub uses_bitmap: bool,
    /// `KVM_ADDRESS_SPACE_NUM` of the VM.
    pub nr_as_ids: u32,
    /// `KVM_USER_MEM_SLOTS`.
    pub user_mem_slots: u32,
}

/// The memslot the request names, under `slots_lock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotFacts {
    Missing,
    Present {
        npages: u64,
        /// `KVM_MEM_LOG_DIRTY_PAGES` is set (it has a bitmap).
        logging: bool,
        /// `KVM_MEM_READONLY` is set.
        read_only: bool,
    },
}

/// Why `KVM_GET_DIRTY_BITMAP_FD` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdRefusal {
    /// Unknown `flags` or non-zero padding (EINVAL).
    BadFlags,
    /// `KVM_CAP_DIRTY_SHARED_BITMAP` is not enabled (EOPNOTSUPP).
    NotEnabled,
    /// The VM has no dirty bitmaps (a dirty ring without bitmap): as
    /// `KVM_GET_DIRTY_LOG` (ENXIO).
    NoBitmaps,
    /// Address space or slot id out of range: as `KVM_GET_DIRTY_LOG`
    /// (EINVAL).
    BadSlot,
    /// No such memslot, or dirty logging is off on it: as
    /// `KVM_GET_DIRTY_LOG` (ENOENT).
    NoBitmap,
    /// A read-only memslot, whose bitmap never gets a bit (EINVAL).
    ReadOnly,
}

impl FdRefusal {
    pub const fn errno(self) -> i32 {
        match self {
            Self::BadFlags | Self::BadSlot | Self::ReadOnly => errno::EINVAL,
            Self::NotEnabled => errno::EOPNOTSUPP,
            Self::NoBitmaps => errno::ENXIO,
            Self::NoBitmap => errno::ENOENT,
        }
    }
}

/// Checks `KVM_GET_DIRTY_BITMAP_FD` for `slot` (`as_id << 16 | id`, as
/// `KVM_GET_DIRTY_LOG`), `flags` and `pad` (both must be 0); `memslot`
/// looks the slot up once the ids are known to be in range.  Returns the
/// bitmap's layout.
pub fn check_fd_request(
    vm: &VmFacts,
    slot: u32,
    flags: u32,
    pad: u64,
    page_size: u64,
    memslot: impl FnOnce(u32, u32) -> SlotFacts,
) -> Result<Layout, FdRefusal> {
    if flags != 0 || pad != 0 {
        return Err(FdRefusal::BadFlags);
    }
    if !vm.enabled {
        return Err(FdRefusal::NotEnabled);
    }
    if !vm.uses_bitmap {
        return Err(FdRefusal::NoBitmaps);
    }
    let (as_id, id) = (slot >> 16, slot & 0xffff);
    if as_id >= vm.nr_as_ids || id >= vm.user_mem_slots {
        return Err(FdRefusal::BadSlot);
    }
    match memslot(as_id, id) {
        SlotFacts::Present {
            logging: true,
            read_only: false,
            npages,
        } => Layout::new(npages, page_size).ok_or(FdRefusal::NoBitmap),
        SlotFacts::Present {
            logging: true,
            read_only: true,
            ..
        } => Err(FdRefusal::ReadOnly),
        _ => Err(FdRefusal::NoBitmap),
    }
}

/// Whether the slot still uses the bitmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// KVM sets its bits: mappings are served.
    Live,
    /// The slot let go of it (deleted, logging off, VM destroyed): no bit
    /// is set any more; mappings were zapped; `read(2)` drains what is left.
    Retired,
}

/// An `mmap(2)` of a bitmap's file, as the module's `mmap` handler sees it.
#[derive(Clone, Copy, Debug)]
pub struct MapRequest {
    /// `vm_pgoff`: the first page of the bitmap mapped.
    pub pgoff: u64,
    /// Pages mapped.
    pub pages: u64,
    /// `MAP_SHARED` (`VM_SHARED`).
    pub shared: bool,
    /// `PROT_EXEC` (`VM_EXEC`).
    pub exec: bool,
    /// `current->mm` is the VM's `mm`.
    pub same_mm: bool,
}

/// Why an `mmap(2)` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapRefusal {
    /// The bitmap is retired (ENODEV).
    Retired,
    /// Not the VM's process, as KVM's ioctls refuse it (EIO).
    OtherProcess,
    /// `MAP_PRIVATE`: a copy-on-write copy would stop seeing KVM's bits and
    /// take none (EINVAL).
    Private,
    /// `PROT_EXEC` (EINVAL).
    Exec,
    /// Past [`Layout::map_pages`], or empty (EINVAL).
    Range,
}

impl MapRefusal {
    pub const fn errno(self) -> i32 {
        match self {
            Self::Retired => errno::ENODEV,
            Self::OtherProcess => errno::EIO,
            Self::Private | Self::Exec | Self::Range => errno::EINVAL,
        }
    }
}

/// Checks an `mmap(2)` of a bitmap whose slot is in `state`.  The module
/// then sets `VM_DONTCOPY` (a forked child gets no mapping: a second
/// process taking bits would take them from the VMM), `VM_DONTEXPAND`
/// (`mremap(2)` cannot grow it past the bitmap; moving it is harmless:
/// zaps find mappings by file offset), `VM_DONTDUMP` and `VM_MIXEDMAP`, and
/// clears `VM_MAYEXEC`.
pub fn check_map(layout: &Layout, state: State, req: &MapRequest) -> Result<(), MapRefusal> {
    if state == State::Retired {
        return Err(MapRefusal::Retired);
    }
    if !req.same_mm {
        return Err(MapRefusal::OtherProcess);
    }
    if !req.shared {
        return Err(MapRefusal::Private);
    }
    if req.exec {
        return Err(MapRefusal::Exec);
    }
    match req.pgoff.checked_add(req.pages) {
        Some(end) if req.pages != 0 && end <= layout.map_pages() => Ok(()),
        _ => Err(MapRefusal::Range),
    }
}

/// The answer to a page fault on a mapping of the bitmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Map page `page` of the allocation (the mapping's `pgoff`), inserted
    /// by the handler itself while it holds the bitmap's lock, so that a
    /// retirement cannot zap the mapping between the check and the insert.
    Insert { page: u64 },
    /// The bitmap is retired, or the page lies past the bitmap.
    SigBus,
}

/// Answers a fault at page `pgoff` of the bitmap, with the lock that
/// retirement takes held.
pub fn fault(layout: &Layout, state: State, pgoff: u64) -> Fault {
    if state == State::Live && pgoff < layout.map_pages() {
        Fault::Insert { page: pgoff }
    } else {
        Fault::SigBus
    }
}

/// Why a `read(2)` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadRefusal {
    /// Not the VM's process, as for `mmap(2)` (EIO).
    OtherProcess,
    /// Offset or count not a multiple of 8 bytes, or past the live bitmap
    /// (EINVAL).
    Range,
}

impl ReadRefusal {
    pub const fn errno(self) -> i32 {
        match self {
            Self::OtherProcess => errno::EIO,
            Self::Range => errno::EINVAL,
        }
    }
}

/// Checks a `read(2)` of `count` bytes at byte `offset` of the bitmap, by
/// the VM's process if `same_mm`; returns the first word and the number of
/// words to [`drain`].  Live or retired alike.
pub fn check_read(
    layout: &Layout,
    same_mm: bool,
    offset: u64,
    count: u64,
) -> Result<(usize, usize), ReadRefusal> {
    if !same_mm {
        return Err(ReadRefusal::OtherProcess);
    }
    // A mask, not `is_multiple_of()`: the kernel's clippy.toml declares Rust
    // 1.78 as its oldest, before that method.
    let mask = WORD_BYTES - 1;
    let aligned = (offset & mask) == 0 && (count & mask) == 0;
    match offset.checked_add(count) {
        Some(end) if aligned && end <= layout.live_bytes() => Ok((
            (offset / WORD_BYTES) as usize,
            (count / WORD_BYTES) as usize,
        )),
        _ => Err(ReadRefusal::Range),
    }
}

/// Who keeps a shared bitmap's pages, kept under the bitmap's lock.  The
/// slot holds them from allocation to retirement; each file, from its
/// creation to its release (every mapping holds its file).  The pages are
/// freed when all have let go, exactly once.
///
/// Each `KVM_GET_DIRTY_BITMAP_FD` makes a new file, each with its own
/// inode, as `KVM_GET_STATS_FD` makes a new file per call.  Handing out
/// another descriptor of an existing file instead would race with that
/// file's release (a file whose last reference is gone but whose release
/// has not yet taken the lock), and the files are few.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lifetime {
    slot: bool,
    files: u32,
}

/// What the caller must do after [`Lifetime::retire`], in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retire {
    /// Files exist: zap every mapping of each (`unmap_mapping_range()` on
    /// its own address space) before dropping the lock.
    pub zap: bool,
    /// No file holds the pages: free them.
    pub free: bool,
}

/// What [`Lifetime::open_file`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// Make a file (its own inode, hence its own address space), then call
    /// [`Lifetime::file_made`].
    New,
    /// The bitmap is retired: no new file.
    Retired,
}

impl Default for Lifetime {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifetime {
    /// A bitmap just allocated for a slot, without a file.
    pub const fn new() -> Self {
        Lifetime {
            slot: true,
            files: 0,
        }
    }

    pub const fn state(&self) -> State {
        if self.slot {
            State::Live
        } else {
            State::Retired
        }
    }

    /// `KVM_GET_DIRTY_BITMAP_FD` for this bitmap.
    pub fn open_file(&self) -> Open {
        if self.slot {
            Open::New
        } else {
            Open::Retired
        }
    }

    /// The file [`Open::New`] asked for exists (its creation may fail: then
    /// nothing is counted).
    pub fn file_made(&mut self) {
        debug_assert!(self.slot);
        self.files += 1;
    }

    /// The slot lets go of the bitmap (after KVM made the old memslot
    /// unreachable, so no bit will be set any more).
    pub fn retire(&mut self) -> Retire {
        debug_assert!(self.slot, "a bitmap is retired once");
        self.slot = false;
        Retire {
            zap: self.files != 0,
            free: self.files == 0,
        }
    }

    /// A file's last reference is gone (no descriptor, no mapping).
    /// Returns whether to free the pages.
    pub fn release_file(&mut self) -> bool {
        debug_assert!(self.files != 0);
        self.files -= 1;
        self.files == 0 && !self.slot
    }
}
