/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The boundary between the Rust and the C halves of kvm_dirty.ko, the one
 * interface both read: bindgen makes rust/kvm/shim_bindings_generated.rs of
 * it at build time, so it declares only opaque structs and fixed-width
 * types.
 *
 * kd_*: the shim's wrappers over KVM, which the Rust side (rust/kvm/) calls.
 * They translate and decide nothing: each is a field access, a lock, one
 * call into KVM, or the description of a state of KVM's.  shim/common.c
 * holds those of every architecture, shim/x86.c and shim/arm64.c those of
 * one, declared below under its CONFIG_ symbol.
 * kd_rs_*: the Rust entry points (rust/entry/), which the shim's ops table
 * hands KVM.
 */
#ifndef KVM_DIRTY_SHIM_H
#define KVM_DIRTY_SHIM_H

#include <linux/types.h>

struct kvm;
struct kvm_vcpu;
struct kvm_memory_slot;
struct kvm_dirty_ring;
struct kvm_enable_cap;
struct kvm_dirty_vm;
struct kvm_dirty_table;
struct dentry;
struct mm_struct;
struct file;
struct address_space;
struct vm_area_struct;

/* Counters shown in /sys/kernel/debug/kvm_dirty/; owned by the Rust side. */
enum kd_counter {
	KD_VMS_BOUND,		/* VMs bound to the module since load */
	KD_VMS_LIVE,		/* VMs bound now */
	KD_GET_DIRTY_LOG,	/* KVM_GET_DIRTY_LOG calls served */
	KD_GET_DIRTY_LOG_ERR,	/* ... of which returned an error */
	KD_WORDS_SCANNED,	/* bitmap words looked at */
	KD_WORDS_DIRTY,		/* words harvested with bits set */
	KD_PAGES_HARVESTED,	/* dirty pages reported to user space */
	KD_PAGES_PROTECTED,	/* pages handed to the masked write-protect */
	KD_TLB_FLUSHES,		/* memslot TLB flushes (GET and CLEAR) */
	KD_CLEAR_DIRTY_LOG,	/* KVM_CLEAR_DIRTY_LOG calls served */
	KD_CLEAR_DIRTY_LOG_ERR,	/* ... of which returned an error */
	KD_PAGES_CLEARED,	/* pages cleared and re-protected by CLEAR */
	KD_RING_SOFT_FULL,	/* pushes that found the ring soft-full */
	KD_RING_FULL,		/* pushes refused: ring completely full */
	KD_RING_RESETS,		/* KVM_RESET_DIRTY_RINGS calls served */
	KD_RING_RESET_EINTR,	/* ... cut short by a signal */
	KD_RING_ENTRIES_RESET,	/* entries handed back to user space */
	KD_RING_WP_CALLS,	/* coalesced masked write-protects */
	KD_RING_INVALID,	/* batches rejected: bad slot, range, flags */
	KD_WP_ALL_ENABLED,	/* VMs that turned write-protect-all on */
	KD_WP_ALL_CALLS,	/* KVM_WRITE_PROTECT_ALL_MEM calls served */
	KD_WP_ALL_ROOT_ENTRIES,	/* root entries those calls write-protected */
	KD_HARVEST_NO_WP,	/* GET/CLEAR/ring resets that skipped the WP */
	KD_WP_ALL_LOG_ENABLES,	/* dirty logging turned on by a WP-all */
	KD_WALK_WORDS,		/* masked write-protects served by a Rust walk */
	KD_WALK_STEPS,		/* table entries it read to step down a level */
	KD_WALK_LEAF_TABLES,	/* leaf tables it stepped into */
	KD_WALK_CLEARED,	/* 4K SPTEs whose W it cleared */
	KD_WALK_KVM_WORDS,	/* masked write-protects left to KVM's function */
	KD_RING_MMU_SECTIONS,	/* mmu_lock sections of the ring resets' batches */
	KD_WALK_RMAP_WORDS,	/* ... of walk_words, by the shadow MMU's rmaps */
	KD_WALK_RMAP_SPTES,	/* SPTEs those rmaps named */
	KD_WALK_CLEARED_PLAIN,	/* ... of walk_cleared, by a plain store */
	KD_SBM_VMS,		/* VMs that enabled KVM_CAP_DIRTY_SHARED_BITMAP */
	KD_SBM_ALLOCS,		/* shared bitmaps the module allocated */
	KD_SBM_FREES,		/* ... and freed */
	KD_SBM_FILES,		/* their files made */
	KD_SBM_FDS,		/* descriptors handed out for them */
	KD_SBM_MAPS,		/* mmap()s of them allowed */
	KD_SBM_MAP_REFUSED,	/* ... refused */
	KD_SBM_FAULTS,		/* pages their fault handler mapped */
	KD_SBM_SIGBUS,		/* faults refused: retired, or past the bitmap */
	KD_SBM_RETIRED,		/* bitmaps their slot let go of */
	KD_SBM_ZAPS,		/* files whose mappings a retirement zapped */
	KD_SBM_READ_WORDS,	/* words read(2) took */
	KD_SBM_READ_PAGES,	/* dirty pages (bits) among them */
	KD_SBM_READ_RESTORED,	/* words put back: their copy to user failed */
	KD_NR_COUNTERS
};

/* Per-CPU counters, for the mark_page_dirty hot path. */
enum kd_pcpu_counter {
	KD_RING_PUSHES,		/* gfns pushed to a dirty ring */
	KD_BITMAP_MARKS,	/* bits set in a dirty bitmap */
	KD_WP_PUSH_L1,		/* write-protect-all push-downs into a table */
	KD_WP_PUSH_L2,		/* of level 1 (4K leaves) .. 4 */
	KD_WP_PUSH_L3,
	KD_WP_PUSH_L4,
	KD_WP_PUSH_PROTECTED,	/* entries those push-downs write-protected */
	KD_WP_GRANTS,		/* non-leaf entries given W back by a fault */
	KD_WP_RETRIES,		/* faults retried: table busy or entry changed */
	KD_WP_FAST_FIXES,	/* leaves the lockless fast path recorded and cmpxchg-ed */
	KD_WP_ROOT_LOADS,	/* shadow roots brought up to date as a vCPU loaded them */
	KD_WP_SHARED_LINKS,	/* shadow pages linked with writable entries recorded */
	KD_WP_PUSH_PENDED,	/* arm64: table descriptors push-downs made pending */
	KD_NR_PCPU_COUNTERS
};
void kd_count_pcpu(enum kd_pcpu_counter which);
void kd_count_pcpu_add(enum kd_pcpu_counter which, u64 n);

/*
 * Tracepoints (shim/trace.c, shim/kvm_dirty_trace.h).  Bit KD_TRACE_* of
 * kd_trace_on is set while that event of the module is enabled, so that
 * rust/kvm/trace.rs calls kd_trace_*() only then.
 */
#define KD_TRACE_HARVEST	0	/* kvm_dirty_harvest */
#define KD_TRACE_WP_ALL		1	/* kvm_dirty_wp_all */
#define KD_TRACE_PUSH_DOWN	2	/* kvm_dirty_push_down */
extern unsigned long kd_trace_on;
void kd_trace_harvest(bool clear, u32 slot, u64 first_page, u64 words,
		      u64 pages, bool protect);
void kd_trace_wp_all(u32 roots, u64 entries, bool log_enable);
void kd_trace_push_down(int level, u32 protected, u32 pended);
/* Upstream's kvm_dirty_ring_reset, for a ring the reset walked. */
void kd_trace_ring_reset(struct kvm_dirty_ring *ring);

/*
 * The module's parameters (/sys/module/kvm_dirty/parameters/), read by
 * rust/kvm/params.rs at each use: user space may change them any time.
 */
extern bool kd_bind_vms;	/* bind_vms: bind VMs created from now on */
extern bool kd_own_walk;	/* own_walk: the module's own protect walks */
/* fail_wp_all (a test knob): true if this call is to fail, taking one off */
bool kd_take_fail_wp_all(void);

/*
 * The module's registrations (rust/kvm/registration.rs): the ops table with
 * KVM, and the debugfs directory of the counters, @counters being the
 * KD_NR_COUNTERS shared ones.
 */
int kd_ops_register(void);
void kd_ops_unregister(void);
struct dentry *kd_debugfs_create(u64 *counters);
void kd_debugfs_remove(struct dentry *dir);

/*
 * The uapi numbers of write-protect-all (kernel/0003-*.patch), for the Rust
 * entry points; the shim checks them against <linux/kvm.h>.
 */
#define KD_CAP_DIRTY_WP_ALL		0x4b440001
#define KD_WRITE_PROTECT_ALL_MEM	0xaef0
/*
 * struct kvm_dirty_bitmap_fd, KVM_GET_DIRTY_BITMAP_FD's argument
 * (kernel/0013-*.patch), checked the same way.
 */
struct kd_dirty_bitmap_fd {
	u32 slot;
	u32 flags;
	u64 npages;
	u64 mmap_size;
	u64 pad;
};

/* VM state.  slots_lock is held by KVM around kd_rs_{get,clear}_dirty_log. */
void kd_slots_lock(struct kvm *kvm);
void kd_slots_unlock(struct kvm *kvm);
/* kvm->lock, and what it keeps: no vCPU is created while it is held. */
void kd_vm_lock(struct kvm *kvm);
void kd_vm_unlock(struct kvm *kvm);
u32 kd_created_vcpus(struct kvm *kvm);

/*
 * What the ioctls read of a VM, in one call (under TCG each call costs
 * about as much as the loads it wraps).  With slots_lock held, which keeps
 * every field stable until it is dropped (__kvm_memslots() checks it).
 */
struct kd_vm_facts {
	u32 nr_as_ids;		/* kvm_arch_nr_memslot_as_ids() */
	u32 user_mem_slots;	/* KVM_USER_MEM_SLOTS */
	bool use_dirty_bitmap;	/* kvm_use_dirty_bitmap() */
	bool manual_protect;	/* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 */
	struct kvm_dirty_vm *dirty_vm;	/* write-protect-all state */
};
void kd_vm_facts(struct kvm *kvm, struct kd_vm_facts *facts);

/*
 * A memslot as a dirty-log ioctl or a ring entry names it, valid while
 * slots_lock is held.  The name is decoded here, the one place: the uapi
 * (struct kvm_dirty_log, kvm_clear_dirty_log, kvm_dirty_gfn) puts the
 * address space in bits 16-31 and the id in bits 0-15.  Whether the VM can
 * have that slot is Rust's check (rust/algo/slot.rs), made on as_id and id
 * afterwards: an address space beyond kvm->memslots[] reads as no slot.
 */
struct kd_memslot {
	u32 as_id;			/* the name, decoded */
	u32 id;
	struct kvm_memory_slot *slot;	/* NULL: no such slot */
	u64 npages;
	bool dirty_logging;		/* KVM_MEM_LOG_DIRTY_PAGES */
	unsigned long *dirty_bitmap;	/* NULL: no bitmap */
	unsigned long *second_bitmap;	/* kvm_second_dirty_bitmap() */
	u64 bitmap_bytes;		/* of each of the two */
	bool read_only;			/* KVM_MEM_READONLY */
};
/* Fills all of @out for the slot @slot names. */
void kd_memslot(struct kvm *kvm, u32 slot, struct kd_memslot *out);

/* MMU. */
void kd_mmu_lock(struct kvm *kvm);
void kd_mmu_unlock(struct kvm *kvm);
/* Whether a task waits for the CPU or for mmu_lock, which we hold. */
bool kd_mmu_lock_needbreak(struct kvm *kvm);
void kd_write_protect_masked(struct kvm *kvm, struct kvm_memory_slot *slot,
			     u64 first_page, unsigned long mask);
void kd_flush_tlbs_memslot(struct kvm *kvm, struct kvm_memory_slot *slot);
void kd_flush_tlbs(struct kvm *kvm);
void kd_set_pfn_dirty(u64 pfn);

/*
 * The masked write-protect's own walks (rust/kvm/wp_masked.rs), with
 * mmu_lock held for write.  kd_wp_walk_describe() says which of KVM's
 * structures map the slot now, and fills its description:
 *   KD_WALK_TABLES  @pt, the x86 TDP MMU or the arm64 stage 2; on x86 it
 *                   also entered an RCU read-side section, as KVM's TDP MMU
 *                   walks do, which kd_pt_walk_end() leaves;
 *   KD_WALK_RMAPS   @rm, the x86 shadow MMU's rmaps (kernel/0010);
 *                   nothing to end;
 *   KD_WALK_NONE    neither can be described (a nested guest's rmaps beside
 *                   the TDP MMU, PML, no stage 2 yet...).
 * Whether a walk may serve at all (the own_walk parameter, the host) Rust
 * decides before it asks.  It writes every field of the description it
 * returns (roots beyond nr_roots as zero) and none of the other: the
 * caller leaves both uninitialized, as zeroing them cost a tenth of a
 * CLEAR that protects one word under TCG (tools/tcg-profile).
 */
#define KD_WALK_NONE	0
#define KD_WALK_TABLES	1
#define KD_WALK_RMAPS	2
#define KD_PT_MAX_ROOTS 4
struct kd_pt_walk {
	u64 present;		/* set in every present entry */
	u64 writable;		/* the W bit (x86), S2AP[1] (arm64) */
	u64 table_mask;		/* above 4K, an entry is a table when these */
	u64 table_bits;		/* bits are these, else a huge leaf */
	u64 access_flag;	/* a leaf's AF (arm64); 0 where not known (x86) */
	u64 addr;		/* a table entry's child table address bits, */
	u64 addr_hi;		/* and more of them (arm64 LPA2: 51:50 in 9:8) */
	u32 addr_hi_shift;	/* shifted left by this */
	u64 page_offset;	/* linear-map address minus physical address */
	u64 base_gfn;		/* the slot's first gfn */
	bool init_set;		/* manual protect, initially-set bitmaps */
	u32 nr_roots;
	u32 root_levels[KD_PT_MAX_ROOTS];	/* 1: a table of 4K leaves */
	u32 root_entries[KD_PT_MAX_ROOTS];
	u64 *roots[KD_PT_MAX_ROOTS];
};
/* The x86 shadow MMU's rmaps (kernel/0010: kvm_mmu_rmap_dirty_walk()). */
#define KD_RMAP_LEVELS 3
struct kd_rmap_walk {
	unsigned long *rmap[KD_RMAP_LEVELS];	/* the heads of 4K, 2M, 1G */
	unsigned long entries[KD_RMAP_LEVELS];	/* and how many */
	u64 present;		/* set in every present SPTE */
	u64 writable;		/* the W bit */
	unsigned long many;	/* a head tag: a descriptor chain */
	u32 desc_more;		/* a descriptor's next one, at this offset */
	u32 desc_sptes;		/* its SPTE addresses, from this offset, */
	u32 desc_entries;	/* this many (0 after the last) */
	u64 base_gfn;		/* the slot's first gfn */
	bool init_set;		/* manual protect, initially-set bitmaps */
};
/* Returns KD_WALK_NONE, KD_WALK_TABLES or KD_WALK_RMAPS. */
int kd_wp_walk_describe(struct kvm *kvm, struct kvm_memory_slot *slot,
			struct kd_pt_walk *pt, struct kd_rmap_walk *rm);

/*
 * Dirty rings.  rust/kvm/ring.rs and rust/algo/ring.rs mirror struct
 * kvm_dirty_ring (KvmDirtyRing, RingState) and struct kvm_dirty_gfn
 * (DirtyGfn), so that the push needs no call into C; the shim checks the
 * layouts at build time.
 */
u32 kd_nr_vcpus(struct kvm *kvm);
struct kvm_dirty_ring *kd_vcpu_dirty_ring(struct kvm *kvm, u32 index);
void kd_request_soft_full(struct kvm_vcpu *vcpu);
void kd_cond_resched(void);

/*
 * Write-protect-all (include/linux/kvm_dirty_ops.h).  rust/kvm/wp_all.rs
 * views struct kvm_dirty_vm and struct kvm_dirty_table through #[repr(C)]
 * mirrors (VmWpState, TableWp); the shim checks the layouts at build time.
 */
struct kvm_dirty_vm *kd_vm_dirty_state(struct kvm *kvm);
/*
 * Whether KVM can serve write-protect-all for @kvm (x86: the TDP MMU with
 * A/D bits; arm64: a stage 2), with the bits of its present and writable
 * entries.  Whether the module serves this host, Rust decides.
 */
bool kd_wp_all_supported(struct kvm *kvm, u64 *present, u64 *writable);

/*
 * Shared dirty bitmaps (shim/shared_bitmap.c, rust/kvm/shared_bitmap.rs).
 * An allocation of @bytes, zeroed, charged to the caller's memcg; and its
 * free.
 */
void *kd_vmalloc_zeroed(u64 bytes);
void kd_vfree(void *area);
/* Whether a memslot of @kvm has a dirty bitmap; slots_lock held. */
bool kd_any_dirty_bitmap(struct kvm *kvm);
/*
 * The VM's mm, kept (mmgrab(): the struct, not the address space) until
 * kd_mm_drop(), so that a comparison with current->mm cannot match a
 * later process's mm at the same address.
 */
struct mm_struct *kd_vm_mm_grab(struct kvm *kvm);
void kd_mm_drop(struct mm_struct *mm);
bool kd_current_mm_is(struct mm_struct *mm);
/*
 * A new file of a shared bitmap (its own inode, hence its own address
 * space, *@mapping), @size bytes long (fstat(), lseek()), with @priv as its
 * private data; or an ERR_PTR.  Opened O_RDWR; pread() allowed.
 */
struct file *kd_sbm_file_create(void *priv, u64 size,
				struct address_space **mapping);
/* A descriptor for a new file: reserve (O_CLOEXEC), then install or undo. */
int kd_fd_reserve(void);
void kd_fd_install(int fd, struct file *file);
void kd_fd_unreserve(int fd);
void kd_fput(struct file *file);
/*
 * Maps the page of vmalloc memory at @kaddr at @addr of @vma (the fault
 * handler, mmap_lock held); 0, -EBUSY if a page is mapped there already,
 * or another -errno.
 */
int kd_sbm_insert_page(struct vm_area_struct *vma, u64 addr, void *kaddr);
/* Zaps every mapping of @mapping, in every process. */
void kd_sbm_zap(struct address_space *mapping);
/* What the mmap handler is asked for: flags from the VMA. */
struct kd_sbm_map {
	u64 pgoff;		/* the first page of the file mapped */
	u64 pages;		/* pages mapped */
	bool shared;		/* VM_SHARED */
	bool exec;		/* VM_EXEC */
};

#ifdef CONFIG_X86
/* x86: the x86 half of the shim */

/* What the host offers, read once at load (rust/kvm/host.rs). */
struct kd_host {
	bool popcnt;		/* the CPU has POPCNT */
	bool svm;		/* AMD SVM (kvm_amd) */
};
void kd_host_init(struct kd_host *host);
/* kvm_arch_sync_dirty_log(): PML buffers into the bitmap (empty on arm64). */
void kd_sync_dirty_log(struct kvm *kvm, struct kvm_memory_slot *slot);
/* Leaves the RCU section kd_wp_walk_describe() entered for KD_WALK_TABLES. */
void kd_pt_walk_end(void);
/*
 * Each TDP MMU root, valid or not, passed to @fn with @ctx; mmu_lock held
 * for write by the caller.
 */
void kd_visit_root_tables(struct kvm *kvm,
			  void (*fn)(void *ctx, struct kvm_dirty_table *table,
				     u64 *spt),
			  void *ctx);
/* Every vCPU loads its MMU root again before it next enters the guest. */
void kd_wp_all_reload_roots(struct kvm *kvm);
#endif /* CONFIG_X86 */

#ifdef CONFIG_ARM64
/* arm64: the arm64 half of the shim */

/* What the host offers, read once at load (rust/kvm/host.rs). */
struct kd_host {
	bool nested_virt;	/* ARM64_HAS_NESTED_VIRT: shadow stage-2 MMUs */
	bool protected_kvm;	/* protected KVM: the hypervisor owns stage 2 */
};
/* Also works out, once, what the stage-2 walk needs of the linear map. */
void kd_host_init(struct kd_host *host);
/* Turns ->wp_s2_push() on for @kvm's stage 2, before it has vCPUs. */
int kd_s2_wp_all_enable(struct kvm *kvm);
/* The start level's tables, @entries descriptors, at @level. */
u64 *kd_s2_pgd(struct kvm *kvm, u32 *entries, int *level);
/* ->wp_s2_push(), with the child table's size. */
int kd_wp_s2_push(struct kvm *kvm, u64 *ptep, u64 old, int level, u64 *child);
#endif /* CONFIG_ARM64 */

/* Rust entry points (rust/entry/), in the ops table. */
int kd_rs_vm_init(struct kvm *kvm);
void kd_rs_vm_destroy(struct kvm *kvm);
/*
 * The dirty-log ioctls: @facts is kd_vm_facts() of @kvm and @memslot the
 * slot the ioctl names, read by the ops-table entry that calls.
 */
int kd_rs_get_dirty_log(struct kvm *kvm, const struct kd_vm_facts *facts,
			const struct kd_memslot *memslot, u64 user_bitmap);
int kd_rs_clear_dirty_log(struct kvm *kvm, const struct kd_vm_facts *facts,
			  const struct kd_memslot *memslot, u64 first_page,
			  u32 num_pages, u64 user_bitmap);
void kd_rs_mark_page_dirty(struct kvm_vcpu *vcpu, struct kvm_dirty_ring *ring,
			   unsigned long *bitmap, u32 slot, u64 rel_gfn);
int kd_rs_reset_dirty_rings(struct kvm *kvm);
int kd_rs_check_extension(struct kvm *kvm, long cap);
int kd_rs_enable_cap(struct kvm *kvm, struct kvm_enable_cap *cap);
long kd_rs_vm_ioctl(struct kvm *kvm, unsigned int ioctl, unsigned long arg);
/*
 * The shared dirty bitmap's capability and ioctl, which the ops table's
 * check_extension, enable_cap and vm_ioctl entries hand to these.
 */
int kd_rs_sbm_check_extension(struct kvm *kvm);
int kd_rs_sbm_enable_cap(struct kvm *kvm, struct kvm_enable_cap *cap);
long kd_rs_get_dirty_bitmap_fd(struct kvm *kvm, unsigned long arg);
/*
 * A memslot's dirty bitmap: allocated (0, -ENOIOCTLCMD for KVM's own, or
 * -errno) and let go of (true if it was the module's).
 */
int kd_rs_alloc_dirty_bitmap(struct kvm *kvm, u64 npages,
			     unsigned long **bitmap);
bool kd_rs_free_dirty_bitmap(struct kvm *kvm, unsigned long *bitmap);
/* A shared bitmap's file, @priv its private data (shim/shared_bitmap.c). */
int kd_rs_sbm_mmap(void *priv, const struct kd_sbm_map *map);
int kd_rs_sbm_fault(void *priv, struct vm_area_struct *vma, u64 addr,
		    u64 pgoff);
long kd_rs_sbm_read(void *priv, u64 user_buf, u64 count, u64 offset);
void kd_rs_sbm_release(void *priv, struct address_space *mapping);
void kd_rs_wp_log_enable(struct kvm *kvm);
#ifdef CONFIG_X86
int kd_rs_wp_step(struct kvm *kvm, bool write, struct kvm_dirty_table *table,
		  u64 *table_spt, int index, u64 spte,
		  struct kvm_dirty_table *child, u64 *child_spt,
		  int child_level);
void kd_rs_wp_link(struct kvm *kvm, struct kvm_dirty_table *child,
		   u64 *child_spt, u64 *spte);
void kd_rs_wp_leaf(struct kvm *kvm, struct kvm_dirty_table *table, int index,
		   u64 new_spte);
bool kd_rs_wp_fast_begin(struct kvm *kvm, struct kvm_dirty_table *table,
			 int index, u64 *token);
void kd_rs_wp_fast_end(struct kvm *kvm, struct kvm_dirty_table *table,
		       int index, u64 token);
void kd_rs_wp_link_shared(struct kvm *kvm, struct kvm_dirty_table *child,
			  u64 *child_spt, u64 *spte);
void kd_rs_wp_load_root(struct kvm *kvm, struct kvm_dirty_table *table,
			u64 *spt);
#endif /* CONFIG_X86 */
#ifdef CONFIG_ARM64
int kd_rs_wp_s2_push(struct kvm *kvm, u64 *ptep, u64 old, int level,
		     u64 *child, u32 entries);
#endif /* CONFIG_ARM64 */

#endif /* KVM_DIRTY_SHIM_H */
