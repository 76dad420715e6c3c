// SPDX-License-Identifier: GPL-2.0
/*
 * The C half of kvm_dirty.ko: the ops table KVM calls, and the thin wrappers
 * over KVM internals that the Rust half calls (include/kvm_dirty_shim.h).
 * Algorithms live in rust/; nothing here decides anything.
 */
#include <linux/debugfs.h>
#include <linux/kvm_host.h>
#include <linux/kvm_dirty_ops.h>
#include <linux/kvm_dirty_ring.h>
#include <linux/module.h>

#include "../include/kvm_dirty_shim.h"

#ifdef CONFIG_ARM64
#include <asm/kvm_pgtable.h>
#include <asm/virt.h>

static int kd_wp_s2_push(struct kvm *kvm, u64 *ptep, u64 old, int level,
			 u64 *child);
static void kd_s2_walk_init(void);
#endif

static bool bind_vms = true;
module_param(bind_vms, bool, 0644);

/* rust/wp_masked.rs: the module's own walk, or KVM's function for all. */
static bool own_walk = true;
module_param(own_walk, bool, 0644);
MODULE_PARM_DESC(own_walk,
		 "write-protect dirty-logged pages by the module's own page-table walk (x86 TDP MMU, arm64 stage 2), else by KVM's function");
MODULE_PARM_DESC(bind_vms, "Bind VMs created from now on to the Rust paths (default: Y)");

bool kd_bind_vms(void)
{
	return READ_ONCE(bind_vms);
}

/*
 * The ring when the VM uses one and a vCPU is running (upstream pushes only
 * then), else none; Rust then sets the bitmap bit if there is a bitmap.
 */
static void kd_mark_page_dirty(struct kvm *kvm, struct kvm_vcpu *vcpu,
			       const struct kvm_memory_slot *memslot,
			       u64 rel_gfn)
{
	kd_rs_mark_page_dirty(vcpu,
			      kvm->dirty_ring_size && vcpu ? &vcpu->dirty_ring : NULL,
			      memslot->dirty_bitmap,
			      (memslot->as_id << 16) | memslot->id, rel_gfn);
}

/*
 * Write-protect-all: KVM_CAP_DIRTY_WP_ALL and KVM_WRITE_PROTECT_ALL_MEM
 * (uapi in kernel/0003-*.patch).  Argument plumbing; rust/wp_all_tdp.rs
 * decides.
 */
static int kd_check_extension(struct kvm *kvm, long cap)
{
	u64 present, writable;

	if (cap != KVM_CAP_DIRTY_WP_ALL)
		return -ENOIOCTLCMD;
	return kd_wp_all_supported(kvm, &present, &writable);
}

static int kd_enable_cap(struct kvm *kvm, struct kvm_enable_cap *cap)
{
	int r;

	if (cap->cap != KVM_CAP_DIRTY_WP_ALL)
		return -ENOIOCTLCMD;
	if (cap->flags || cap->args[1] || cap->args[2] || cap->args[3])
		return -EINVAL;
	/* kvm->lock keeps vCPUs from being created meanwhile. */
	mutex_lock(&kvm->lock);
	r = kd_rs_wp_all_enable(kvm, cap->args[0], kvm->created_vcpus);
	mutex_unlock(&kvm->lock);
	return r;
}

static long kd_vm_ioctl(struct kvm *kvm, unsigned int ioctl, unsigned long arg)
{
	if (ioctl != KVM_WRITE_PROTECT_ALL_MEM)
		return -ENOIOCTLCMD;
	if (arg)
		return -EINVAL;
	return kd_rs_write_protect_all(kvm);
}

/* Dirty logging turned on for @slot of a WP-all VM (kernel/0005-*.patch). */
static void kd_wp_log_enable(struct kvm *kvm,
			     const struct kvm_memory_slot *slot)
{
	lockdep_assert_held(&kvm->slots_lock);
	kd_rs_wp_log_enable(kvm);
}

static const struct kvm_dirty_ops kd_ops = {
	.owner = THIS_MODULE,
	.vm_init = kd_rs_vm_init,
	.vm_destroy = kd_rs_vm_destroy,
	.get_dirty_log = kd_rs_get_dirty_log,
	.clear_dirty_log = kd_rs_clear_dirty_log,
	.mark_page_dirty = kd_mark_page_dirty,
	.reset_dirty_rings = kd_rs_reset_dirty_rings,
	.check_extension = kd_check_extension,
	.enable_cap = kd_enable_cap,
	.vm_ioctl = kd_vm_ioctl,
	.wp_log_enable = kd_wp_log_enable,
#ifdef CONFIG_X86
	/* rust/entry/wp_all_x86.rs and wp_all_shadow.rs: x86 only. */
	.wp_step = kd_rs_wp_step,
	.wp_link = kd_rs_wp_link,
	.wp_leaf = kd_rs_wp_leaf,
	.wp_fast_begin = kd_rs_wp_fast_begin,
	.wp_fast_end = kd_rs_wp_fast_end,
	.wp_link_shared = kd_rs_wp_link_shared,
	.wp_load_root = kd_rs_wp_load_root,
#endif
#ifdef CONFIG_ARM64
	.wp_s2_push = kd_wp_s2_push,
#endif
};

static const char *const kd_counter_names[KD_NR_COUNTERS] = {
	[KD_VMS_BOUND] = "vms_bound",
	[KD_VMS_LIVE] = "vms_live",
	[KD_GET_DIRTY_LOG] = "get_dirty_log",
	[KD_GET_DIRTY_LOG_ERR] = "get_dirty_log_errors",
	[KD_WORDS_SCANNED] = "words_scanned",
	[KD_WORDS_DIRTY] = "words_dirty",
	[KD_PAGES_HARVESTED] = "pages_harvested",
	[KD_PAGES_PROTECTED] = "pages_protected",
	[KD_TLB_FLUSHES] = "tlb_flushes",
	[KD_CLEAR_DIRTY_LOG] = "clear_dirty_log",
	[KD_CLEAR_DIRTY_LOG_ERR] = "clear_dirty_log_errors",
	[KD_PAGES_CLEARED] = "pages_cleared",
	[KD_RING_SOFT_FULL] = "ring_soft_full",
	[KD_RING_FULL] = "ring_full",
	[KD_RING_RESETS] = "ring_resets",
	[KD_RING_RESET_EINTR] = "ring_reset_eintr",
	[KD_RING_ENTRIES_RESET] = "ring_entries_reset",
	[KD_RING_WP_CALLS] = "ring_wp_calls",
	[KD_RING_INVALID] = "ring_invalid",
	[KD_WP_ALL_ENABLED] = "wp_all_enabled",
	[KD_WP_ALL_CALLS] = "wp_all_calls",
	[KD_WP_ALL_ROOT_ENTRIES] = "wp_all_root_entries",
	[KD_HARVEST_NO_WP] = "harvest_no_wp",
	[KD_WP_ALL_LOG_ENABLES] = "wp_all_log_enables",
	[KD_WALK_WORDS] = "walk_words",
	[KD_WALK_STEPS] = "walk_steps",
	[KD_WALK_LEAF_TABLES] = "walk_leaf_tables",
	[KD_WALK_CLEARED] = "walk_cleared",
	[KD_WALK_KVM_WORDS] = "walk_kvm_words",
	[KD_RING_MMU_SECTIONS] = "ring_mmu_sections",
	[KD_WALK_RMAP_WORDS] = "walk_rmap_words",
	[KD_WALK_RMAP_SPTES] = "walk_rmap_sptes",
	[KD_WALK_CLEARED_PLAIN] = "walk_cleared_plain",
};

static const char *const kd_pcpu_names[KD_NR_PCPU_COUNTERS] = {
	[KD_RING_PUSHES] = "ring_pushes",
	[KD_BITMAP_MARKS] = "bitmap_marks",
	[KD_WP_PUSH_L1] = "wp_push_l1",
	[KD_WP_PUSH_L2] = "wp_push_l2",
	[KD_WP_PUSH_L3] = "wp_push_l3",
	[KD_WP_PUSH_L4] = "wp_push_l4",
	[KD_WP_PUSH_PROTECTED] = "wp_push_protected",
	[KD_WP_GRANTS] = "wp_grants",
	[KD_WP_RETRIES] = "wp_retries",
	[KD_WP_FAST_FIXES] = "wp_fast_fixes",
	[KD_WP_ROOT_LOADS] = "wp_root_loads",
	[KD_WP_SHARED_LINKS] = "wp_shared_links",
	[KD_WP_PUSH_PENDED] = "wp_push_pended",
};

static DEFINE_PER_CPU(u64, kd_pcpu[KD_NR_PCPU_COUNTERS]);

void kd_count_pcpu(enum kd_pcpu_counter which)
{
	this_cpu_inc(kd_pcpu[which]);
}

void kd_count_pcpu_add(enum kd_pcpu_counter which, u64 n)
{
	this_cpu_add(kd_pcpu[which], n);
}

static int kd_pcpu_get(void *data, u64 *val)
{
	unsigned long which = (unsigned long)data;
	int cpu;

	*val = 0;
	for_each_possible_cpu(cpu)
		*val += per_cpu(kd_pcpu[which], cpu);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(kd_pcpu_fops, kd_pcpu_get, NULL, "%llu\n");

/* rust/ring.rs and rust/vm.rs view these through #[repr(C)] mirrors. */
static_assert(offsetof(struct kvm_dirty_ring, dirty_index) == 0);
static_assert(offsetof(struct kvm_dirty_ring, reset_index) == 4);
static_assert(offsetof(struct kvm_dirty_ring, size) == 8);
static_assert(offsetof(struct kvm_dirty_ring, soft_limit) == 12);
static_assert(offsetof(struct kvm_dirty_ring, dirty_gfns) == 16);
static_assert(offsetof(struct kvm_dirty_ring, index) == 24);
static_assert(sizeof(struct kvm_dirty_gfn) == 16);
static_assert(offsetof(struct kvm_dirty_gfn, flags) == 0);
static_assert(offsetof(struct kvm_dirty_gfn, slot) == 4);
static_assert(offsetof(struct kvm_dirty_gfn, offset) == 8);
/* rust/kvm/dirty_log.rs: the dirty-log ioctls' arguments. */
static_assert(sizeof(struct kvm_dirty_log) == 16);
static_assert(offsetof(struct kvm_dirty_log, slot) == 0);
static_assert(offsetof(struct kvm_dirty_log, dirty_bitmap) == 8);
static_assert(sizeof(struct kvm_clear_dirty_log) == 24);
static_assert(offsetof(struct kvm_clear_dirty_log, slot) == 0);
static_assert(offsetof(struct kvm_clear_dirty_log, num_pages) == 4);
static_assert(offsetof(struct kvm_clear_dirty_log, first_page) == 8);
static_assert(offsetof(struct kvm_clear_dirty_log, dirty_bitmap) == 16);
/* rust/wp_all.rs (TableWp) and rust/wp_all_tdp.rs (VmWpState). */
static_assert(sizeof(struct kvm_dirty_table) == 72);
static_assert(offsetof(struct kvm_dirty_table, maybe_writable) == 8);
static_assert(sizeof(struct kvm_dirty_vm) == 16);
static_assert(offsetof(struct kvm_dirty_vm, flags) == 8);

/* The module's registrations, made and undone by rust/kvm/registration.rs. */
int kd_ops_register(void)
{
#ifdef CONFIG_ARM64
	/* What the stage-2 walk needs, before any VM can be bound. */
	kd_s2_walk_init();
#endif
	return kvm_dirty_ops_register(&kd_ops);
}

void kd_ops_unregister(void)
{
	kvm_dirty_ops_unregister(&kd_ops);
}

struct dentry *kd_debugfs_create(u64 *counters)
{
	struct dentry *dir = debugfs_create_dir("kvm_dirty", NULL);
	int i;

	for (i = 0; i < KD_NR_COUNTERS; i++)
		debugfs_create_u64(kd_counter_names[i], 0444, dir, &counters[i]);
	for (i = 0; i < KD_NR_PCPU_COUNTERS; i++)
		debugfs_create_file_unsafe(kd_pcpu_names[i], 0444, dir,
					   (void *)(unsigned long)i,
					   &kd_pcpu_fops);
	return dir;
}

void kd_debugfs_remove(struct dentry *dir)
{
	debugfs_remove(dir);
}

void kd_slots_lock(struct kvm *kvm)
{
	mutex_lock(&kvm->slots_lock);
}

void kd_slots_unlock(struct kvm *kvm)
{
	mutex_unlock(&kvm->slots_lock);
}

/*
 * No lockdep_assert_held(&kvm->slots_lock) here: every caller holds it
 * (kernel/0001's hooks, SlotsLockGuard), and the memslot reads that follow
 * are checked by __kvm_memslots()'s srcu_dereference_check() on
 * slots_lock.  Under the test kernels' lockdep the assertion cost 66 of
 * about 5,400 instructions of a manual-protect GET (tools/tcg-profile).
 */
static __always_inline void __kd_vm_facts(struct kvm *kvm,
					  struct kd_vm_facts *facts)
{
	facts->nr_as_ids = kvm_arch_nr_memslot_as_ids(kvm);
	facts->user_mem_slots = KVM_USER_MEM_SLOTS;
	facts->use_dirty_bitmap = kvm_use_dirty_bitmap(kvm);
	facts->manual_protect = kvm->manual_dirty_log_protect;
	facts->dirty_vm = &kvm->dirty_vm;
}

void kd_vm_facts(struct kvm *kvm, struct kd_vm_facts *facts)
{
	__kd_vm_facts(kvm, facts);
}

static __always_inline void __kd_memslot(struct kvm *kvm, u32 as_id, u32 id,
					 struct kd_memslot *out)
{
	struct kvm_memory_slot *slot = id_to_memslot(__kvm_memslots(kvm, as_id), id);

	if (!slot) {
		*out = (struct kd_memslot){};
		return;
	}
	out->slot = slot;
	out->npages = slot->npages;
	out->dirty_logging = slot->flags & KVM_MEM_LOG_DIRTY_PAGES;
	out->dirty_bitmap = slot->dirty_bitmap;
	out->second_bitmap = slot->dirty_bitmap ? kvm_second_dirty_bitmap(slot) : NULL;
	out->bitmap_bytes = kvm_dirty_bitmap_bytes(slot);
}

void kd_memslot(struct kvm *kvm, u32 as_id, u32 id, struct kd_memslot *out)
{
	__kd_memslot(kvm, as_id, id, out);
}

/*
 * The entry of both dirty-log ioctls reads here, where the reads inline:
 * the facts, and the memslot.  @as_id indexes kvm->memslots[], so it is
 * bounded by the array; that the VM has that address space (and user
 * space that id) is Rust's check, made after this call, as Rust decoded
 * both from the ioctl.
 */
void kd_vm_slot(struct kvm *kvm, u32 as_id, u32 id, struct kd_vm_facts *facts,
		struct kd_memslot *out)
{
	__kd_vm_facts(kvm, facts);
	if (as_id < KVM_MAX_NR_ADDRESS_SPACES)
		__kd_memslot(kvm, as_id, id, out);
	else
		*out = (struct kd_memslot){};
}

void kd_sync_dirty_log(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	kvm_arch_sync_dirty_log(kvm, slot);
}

/* KVM_MMU_LOCK() lives in a private header of virt/kvm: the same choice. */
void kd_mmu_lock(struct kvm *kvm)
{
#ifdef KVM_HAVE_MMU_RWLOCK
	write_lock(&kvm->mmu_lock);
#else
	spin_lock(&kvm->mmu_lock);
#endif
}

void kd_mmu_unlock(struct kvm *kvm)
{
#ifdef KVM_HAVE_MMU_RWLOCK
	write_unlock(&kvm->mmu_lock);
#else
	spin_unlock(&kvm->mmu_lock);
#endif
}

/* As KVM's own long mmu_lock sections ask (tdp_mmu_iter_cond_resched()). */
bool kd_mmu_lock_needbreak(struct kvm *kvm)
{
#ifdef KVM_HAVE_MMU_RWLOCK
	return need_resched() || rwlock_needbreak(&kvm->mmu_lock);
#else
	return need_resched() || spin_needbreak(&kvm->mmu_lock);
#endif
}

void kd_write_protect_masked(struct kvm *kvm, struct kvm_memory_slot *slot,
			     u64 first_page, unsigned long mask)
{
	kvm_arch_mmu_enable_log_dirty_pt_masked(kvm, slot, first_page, mask);
}

void kd_set_pfn_dirty(u64 pfn)
{
	kvm_set_pfn_dirty(pfn);
}

bool kd_cpu_has_popcnt(void)
{
#ifdef CONFIG_X86
	return boot_cpu_has(X86_FEATURE_POPCNT);
#else
	return false;
#endif
}

void kd_flush_tlbs_memslot(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	kvm_flush_remote_tlbs_memslot(kvm, slot);
}

void kd_flush_tlbs(struct kvm *kvm)
{
	kvm_flush_remote_tlbs(kvm);
}

u32 kd_nr_vcpus(struct kvm *kvm)
{
	return atomic_read(&kvm->online_vcpus);
}

struct kvm_dirty_ring *kd_vcpu_dirty_ring(struct kvm *kvm, u32 index)
{
	struct kvm_vcpu *vcpu = kvm_get_vcpu(kvm, index);

	return vcpu ? &vcpu->dirty_ring : NULL;
}

void kd_request_soft_full(struct kvm_vcpu *vcpu)
{
	kvm_make_request(KVM_REQ_DIRTY_RING_SOFT_FULL, vcpu);
}

void kd_cond_resched(void)
{
	cond_resched();
}

struct kvm_dirty_vm *kd_vm_dirty_state(struct kvm *kvm)
{
	return &kvm->dirty_vm;
}

#ifdef CONFIG_X86
static __always_inline bool kd_pt_walk_begin(struct kvm *kvm,
					     struct kvm_memory_slot *slot,
					     struct kd_pt_walk *walk)
{
	struct kvm_dirty_tdp_walk w;
	int i;

	if (!kvm_tdp_mmu_dirty_walk(kvm, slot->as_id, &w))
		return false;
	walk->present = w.present;
	walk->writable = w.writable;
	walk->table_mask = w.huge;
	walk->table_bits = 0;
	/* KVM's A/D masks are private to it: always an atomic AND. */
	walk->quiet = 0;
	walk->addr = w.addr;
	walk->addr_hi = 0;
	walk->page_offset = (u64)__va(0);
	walk->base_gfn = slot->base_gfn;
	/*
	 * As clear_dirty_pt_masked(), and the huge-page part of
	 * kvm_arch_mmu_enable_log_dirty_pt_masked().
	 */
	walk->set_pfn_dirty = true;
	walk->huge_to_kvm = kvm_dirty_log_manual_protect_and_init_set(kvm);
	walk->addr_hi_shift = 0;
	walk->nr_roots = w.nr_roots;
	for (i = 0; i < KD_PT_MAX_ROOTS; i++) {
		bool root = i < w.nr_roots;

		walk->roots[i] = root ? w.roots[i] : NULL;
		walk->root_levels[i] = root ? w.root_levels[i] : 0;
		walk->root_entries[i] = root ? PAGE_SIZE / sizeof(u64) : 0;
	}
	/*
	 * mmu_lock held for write keeps the tables; RCU as KVM's own walks
	 * (tdp_mmu.c frees tables after a grace period).
	 */
	rcu_read_lock();
	return true;
}

void kd_pt_walk_end(void)
{
	rcu_read_unlock();
}

static_assert(KD_PT_MAX_ROOTS == KVM_DIRTY_TDP_MAX_ROOTS);
static_assert(KD_RMAP_LEVELS == KVM_DIRTY_RMAP_LEVELS);

static bool kd_rmap_walk_begin(struct kvm *kvm, struct kvm_memory_slot *slot,
			       struct kd_rmap_walk *walk)
{
	struct kvm_dirty_rmap_walk w;
	int i;

	if (!kvm_mmu_rmap_dirty_walk(kvm, slot, &w))
		return false;
	for (i = 0; i < KD_RMAP_LEVELS; i++) {
		walk->rmap[i] = w.rmap[i];
		walk->entries[i] = w.entries[i];
	}
	walk->present = w.present;
	walk->writable = w.writable;
	walk->many = w.many;
	walk->desc_more = w.desc_more;
	walk->desc_sptes = w.desc_sptes;
	walk->desc_entries = w.desc_entries;
	walk->base_gfn = slot->base_gfn;
	/* The huge-page part of kvm_arch_mmu_enable_log_dirty_pt_masked(). */
	walk->huge_to_kvm = kvm_dirty_log_manual_protect_and_init_set(kvm);
	/* No RCU section: mmu_lock held for write keeps rmaps and SPTEs. */
	return true;
}

/*
 * One call per mmu_lock section that protects anything: under TCG each call
 * into C costs about as much as the loads it wraps.
 */
int kd_wp_walk_begin(struct kvm *kvm, struct kvm_memory_slot *slot,
		     struct kd_pt_walk *pt, struct kd_rmap_walk *rm)
{
	/* SVM only, as write-protect-all: VMX (PML, EPT) is untested here. */
	if (!READ_ONCE(own_walk) || !boot_cpu_has(X86_FEATURE_SVM))
		return KD_WALK_NONE;
	/*
	 * A slot without rmaps: the TDP MMU alone, whose walk can serve.  With
	 * rmaps: the shadow MMU (npt=0), whose rmap walk can serve, or a TDP
	 * MMU VM that runs a nested guest, which neither serves (each of
	 * kernel/0009 and 0010 refuses it).  Read without slots_arch_lock: a
	 * nested guest's rmaps allocated meanwhile make the TDP MMU walk
	 * refuse (kvm_memslots_have_rmaps()), as KVM's own function decides.
	 * (Not kvm->arch.tdp_mmu_roots: KVM initializes it for the TDP MMU
	 * only.)
	 */
	if (!READ_ONCE(slot->arch.rmap[0]))
		return kd_pt_walk_begin(kvm, slot, pt) ? KD_WALK_TABLES :
							 KD_WALK_NONE;
	return kd_rmap_walk_begin(kvm, slot, rm) ? KD_WALK_RMAPS : KD_WALK_NONE;
}

bool kd_wp_all_supported(struct kvm *kvm, u64 *present, u64 *writable)
{
	struct kvm_dirty_spte_masks masks;
	bool ok = kvm_mmu_wp_all_supported(kvm, &masks);

	*present = masks.present;
	*writable = masks.writable;
	/*
	 * Only what these machines test: AMD SVM (QEMU's -cpu max).  Intel
	 * VMX (EPT with A/D bits, PML, which logs by clearing D bits) would
	 * be served by the same W-based mechanism, but untested: refused.
	 */
	return ok && boot_cpu_has(X86_FEATURE_SVM);
}

void kd_visit_root_tables(struct kvm *kvm,
			    void (*fn)(void *ctx, struct kvm_dirty_table *table,
				       u64 *spt),
			    void *ctx)
{
	kvm_tdp_mmu_visit_roots(kvm, fn, ctx);
}

/*
 * Every vCPU loads its root again before it next enters the guest, and
 * kvm_mmu_load_pgd() calls ->wp_load_root() on the way (kernel/0007).
 */
void kd_wp_all_reload_roots(struct kvm *kvm)
{
	struct kvm_vcpu *vcpu;
	unsigned long i;

	kvm_for_each_vcpu(i, vcpu, kvm)
		kvm_make_request(KVM_REQ_LOAD_MMU_PGD, vcpu);
}

int kd_s2_wp_all_enable(struct kvm *kvm)
{
	return -EOPNOTSUPP;
}

u64 *kd_s2_pgd(struct kvm *kvm, u32 *entries, int *level)
{
	*entries = 0;
	return NULL;
}
#else
/*
 * arm64 stage 2 (kernel/0008): no roots to reload, no x86 tables; pending
 * table descriptors instead (rust/wp_all_arm64.rs).
 */
void kd_wp_all_reload_roots(struct kvm *kvm)
{
}

/*
 * Where the linear map puts physical address 0 (stage-2 tables are
 * allocated in it: alloc_pages_exact()), the same for every address it
 * maps: set at load, as virt_to_phys() per walk was a percent of a CLEAR
 * that protects one word under TCG (tools/tcg-profile).  From the linear
 * alias of a page of the kernel image, not the image address itself, which
 * is offset by kimage_voffset instead.
 */
static u64 kd_s2_page_offset __ro_after_init;

static void kd_s2_walk_init(void)
{
	phys_addr_t pa = __pa_symbol(empty_zero_page);

	kd_s2_page_offset = (u64)__va(pa) - pa;
}

/* KVM_PTE_TYPE with KVM_PTE_TYPE_TABLE, private to hyp/pgtable.c. */
#define KD_S2_PTE_TYPE_TABLE	BIT(1)

static __always_inline bool kd_pt_walk_begin(struct kvm *kvm,
					     struct kvm_memory_slot *slot,
					     struct kd_pt_walk *walk)
{
	struct kvm_pgtable *pgt = kvm->arch.mmu.pgt;
	u64 *pgd;
	u32 pages;
	s8 level;
	int i;

	/*
	 * 4K pages only: the 512-entry tables rust/pt_walk.rs knows.  Not with
	 * nested virt (shadow stage-2 MMUs) or protected KVM, as
	 * write-protect-all.
	 */
	if (!READ_ONCE(own_walk) || PAGE_SIZE != SZ_4K ||
	    cpus_have_final_cap(ARM64_HAS_NESTED_VIRT) ||
	    is_protected_kvm_enabled() || !pgt)
		return false;
	/*
	 * What kvm_s2_wp_all_pgd() returns, read here: under TCG its call and
	 * kvm_pgtable_stage2_pgd_size()'s were a tenth of a CLEAR that
	 * protects one word (tools/tcg-profile).  The start level's tables
	 * are concatenated: as kvm_pgd_pages(), one more than the index of
	 * the last input address's table.
	 */
	lockdep_assert_held_write(&kvm->mmu_lock);
	level = pgt->start_level;
	if (level < KVM_PGTABLE_FIRST_LEVEL || level > KVM_PGTABLE_LAST_LEVEL)
		return false;
	pages = ((BIT_ULL(pgt->ia_bits) - 1) >> kvm_granule_shift(level - 1)) + 1;
	pgd = (u64 *)pgt->pgd;
	walk->present = KVM_PTE_VALID;
	walk->writable = KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W;
	walk->table_mask = KD_S2_PTE_TYPE_TABLE;
	walk->table_bits = KD_S2_PTE_TYPE_TABLE;
	/*
	 * The hardware may set AF (VTCR_EL2.HA), never DBM-style W (KVM sets
	 * no DBM in stage 2), and every software writer of a leaf but the
	 * walk holds mmu_lock: a leaf with AF set is ours alone, written
	 * with a plain store as stage2_try_set_pte() does under the lock.
	 */
	walk->quiet = KVM_PTE_LEAF_ATTR_LO_S2_AF;
	/* As kvm_pte_to_phys(). */
	if (kvm_lpa2_is_enabled()) {
		walk->addr = KVM_PTE_ADDR_MASK_LPA2;
		walk->addr_hi = KVM_PTE_ADDR_51_50_LPA2;
		walk->addr_hi_shift = 50 - 8;	/* bits 9:8 hold 51:50 */
	} else {
		walk->addr = KVM_PTE_ADDR_MASK;
		walk->addr_hi = 0;
		walk->addr_hi_shift = 0;
	}
	walk->page_offset = kd_s2_page_offset;
	walk->base_gfn = slot->base_gfn;
	/*
	 * kvm_mmu_write_protect_pt_masked() write-protects blocks too, and
	 * the whole range from the mask's first to its last page; it marks no
	 * page dirty (the fault does).
	 */
	walk->set_pfn_dirty = false;
	walk->huge_to_kvm = true;
	walk->nr_roots = 1;
	walk->roots[0] = pgd;
	walk->root_levels[0] = KVM_PGTABLE_LAST_LEVEL + 1 - level;
	/* rust/wp_masked.rs checks the shape (at most 16 pages here). */
	walk->root_entries[0] = pages * PTRS_PER_PTE;
	for (i = 1; i < KD_PT_MAX_ROOTS; i++) {
		walk->roots[i] = NULL;
		walk->root_levels[i] = 0;
		walk->root_entries[i] = 0;
	}
	/*
	 * No RCU section: as KVM's own exclusive stage-2 walks
	 * (kvm_pgtable_walk_begin() enters one for shared walks only), with
	 * mmu_lock held for write no table can be unlinked, hence freed.
	 */
	return true;
}

void kd_pt_walk_end(void)
{
}

/* No rmap walk: that is x86's shadow MMU. */
int kd_wp_walk_begin(struct kvm *kvm, struct kvm_memory_slot *slot,
		     struct kd_pt_walk *pt, struct kd_rmap_walk *rm)
{
	return kd_pt_walk_begin(kvm, slot, pt) ? KD_WALK_TABLES : KD_WALK_NONE;
}

bool kd_wp_all_supported(struct kvm *kvm, u64 *present, u64 *writable)
{
	*present = KVM_PTE_VALID;
	*writable = KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W;
	/* What kvm_s2_wp_all_enable() would refuse. */
	return kvm->arch.mmu.pgt &&
	       !cpus_have_final_cap(ARM64_HAS_NESTED_VIRT) &&
	       !is_protected_kvm_enabled();
}

void kd_visit_root_tables(struct kvm *kvm,
			    void (*fn)(void *ctx, struct kvm_dirty_table *table,
				       u64 *spt),
			    void *ctx)
{
}

int kd_s2_wp_all_enable(struct kvm *kvm)
{
	return kvm_s2_wp_all_enable(kvm);
}

u64 *kd_s2_pgd(struct kvm *kvm, u32 *entries, int *level)
{
	unsigned int n;
	u64 *pgd = kvm_s2_wp_all_pgd(kvm, &n, level);

	*entries = n;
	return pgd;
}

static int kd_wp_s2_push(struct kvm *kvm, u64 *ptep, u64 old, int level,
			 u64 *child)
{
	return kd_rs_wp_s2_push(kvm, ptep, old, level, child, PTRS_PER_PTE);
}
#endif
