// SPDX-License-Identifier: GPL-2.0
/*
 * The C half of kvm_dirty.ko that every architecture shares: the ops table
 * KVM calls, the module's parameters, counters and registrations, and the
 * wrappers over KVM's VM, memslot, MMU and ring state that the Rust half
 * calls (include/kvm_dirty_shim.h).  shim/x86.c and shim/arm64.c hold each
 * architecture's.  The decisions are the Rust half's: these wrappers
 * translate.
 */
#include <linux/debugfs.h>
#include <linux/kvm_host.h>
#include <linux/kvm_dirty_ops.h>
#include <linux/kvm_dirty_ring.h>
#include <linux/module.h>
#include <trace/events/kvm.h>

#include "../include/kvm_dirty_shim.h"

bool kd_bind_vms = true;
module_param_named(bind_vms, kd_bind_vms, bool, 0644);
MODULE_PARM_DESC(bind_vms, "Bind VMs created from now on to the Rust paths (default: Y)");

bool kd_own_walk = true;
module_param_named(own_walk, kd_own_walk, bool, 0644);
MODULE_PARM_DESC(own_walk,
		 "write-protect dirty-logged pages by the module's own page-table walk (x86 TDP MMU, arm64 stage 2), else by KVM's function");

/*
 * Test knob: the next N KVM_WRITE_PROTECT_ALL_MEM calls fail with -EIO, so
 * that a test can see what the VMM does when a dirty sync fails (a migration
 * must fail, the source guest run on).  Written at run time; each failed call
 * takes one off.
 */
static int fail_wp_all;
module_param(fail_wp_all, int, 0644);
MODULE_PARM_DESC(fail_wp_all, "Test knob: fail the next N KVM_WRITE_PROTECT_ALL_MEM calls with -EIO (default: 0)");

bool kd_take_fail_wp_all(void)
{
	int n = READ_ONCE(fail_wp_all);

	while (n > 0 && !try_cmpxchg(&fail_wp_all, &n, n - 1))
		;
	return n > 0;
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

static __always_inline void __kd_memslot(struct kvm *kvm, u32 name,
					 struct kd_memslot *out)
{
	u32 as_id = name >> 16, id = (u16)name;
	struct kvm_memory_slot *slot = NULL;

	/* kvm->memslots[] has KVM_MAX_NR_ADDRESS_SPACES entries. */
	if (as_id < KVM_MAX_NR_ADDRESS_SPACES)
		slot = id_to_memslot(__kvm_memslots(kvm, as_id), id);
	if (!slot) {
		*out = (struct kd_memslot){ .as_id = as_id, .id = id };
		return;
	}
	out->as_id = as_id;
	out->id = id;
	out->slot = slot;
	out->npages = slot->npages;
	out->dirty_logging = slot->flags & KVM_MEM_LOG_DIRTY_PAGES;
	out->dirty_bitmap = slot->dirty_bitmap;
	out->second_bitmap = slot->dirty_bitmap ? kvm_second_dirty_bitmap(slot) : NULL;
	out->bitmap_bytes = kvm_dirty_bitmap_bytes(slot);
	out->read_only = slot->flags & KVM_MEM_READONLY;
}

void kd_memslot(struct kvm *kvm, u32 slot, struct kd_memslot *out)
{
	__kd_memslot(kvm, slot, out);
}

/*
 * The dirty-log ioctls read the VM's facts and the memslot here, where
 * kd_vm_facts() and kd_memslot() inline, rather than by calls from Rust: a
 * manual-protect GET is about a thousand instructions, and each call with
 * its struct copy a few percent of it (Documentation/bench.rst).
 */
static int kd_get_dirty_log(struct kvm *kvm, struct kvm_dirty_log *log)
{
	/* Written whole below: not zeroed first (CONFIG_INIT_STACK_ALL_ZERO). */
	struct kd_vm_facts facts __uninitialized;
	struct kd_memslot memslot __uninitialized;

	__kd_vm_facts(kvm, &facts);
	__kd_memslot(kvm, log->slot, &memslot);
	return kd_rs_get_dirty_log(kvm, &facts, &memslot,
				   (u64)(unsigned long)log->dirty_bitmap);
}

static int kd_clear_dirty_log(struct kvm *kvm, struct kvm_clear_dirty_log *log)
{
	/* Written whole below: not zeroed first (CONFIG_INIT_STACK_ALL_ZERO). */
	struct kd_vm_facts facts __uninitialized;
	struct kd_memslot memslot __uninitialized;

	__kd_vm_facts(kvm, &facts);
	__kd_memslot(kvm, log->slot, &memslot);
	return kd_rs_clear_dirty_log(kvm, &facts, &memslot, log->first_page,
				     log->num_pages,
				     (u64)(unsigned long)log->dirty_bitmap);
}

/*
 * A push traced where kvm_dirty_ring_push() traces it: after the push, with
 * the ring's indices as the push left them (the Rust side keeps them in
 * struct kvm_dirty_ring).  Only the running vCPU pushes to its ring, so an
 * index that moved is this push's; a push into a full ring is refused
 * (ring_full), is no push, and is not traced.
 */
static noinline void kd_push_traced(struct kvm_vcpu *vcpu,
				    struct kvm_dirty_ring *ring,
				    unsigned long *bitmap, u32 slot,
				    u64 rel_gfn)
{
	u32 dirty_index = READ_ONCE(ring->dirty_index);

	kd_rs_mark_page_dirty(vcpu, ring, bitmap, slot, rel_gfn);
	if (READ_ONCE(ring->dirty_index) != dirty_index)
		trace_kvm_dirty_ring_push(ring, slot, rel_gfn);
}

/*
 * The running vCPU's ring when the VM uses rings and a vCPU runs (upstream
 * pushes only then), else none; the slot as the ring names it.  With
 * kvm_dirty_ring_push off, the test of its static key is a patched-out
 * jump and the call into Rust stays a tail call.
 */
static void kd_mark_page_dirty(struct kvm *kvm, struct kvm_vcpu *vcpu,
			       const struct kvm_memory_slot *memslot,
			       u64 rel_gfn)
{
	struct kvm_dirty_ring *ring =
		kvm->dirty_ring_size && vcpu ? &vcpu->dirty_ring : NULL;
	u32 slot = (memslot->as_id << 16) | memslot->id;

	if (trace_kvm_dirty_ring_push_enabled() && ring)
		kd_push_traced(vcpu, ring, memslot->dirty_bitmap, slot, rel_gfn);
	else
		kd_rs_mark_page_dirty(vcpu, ring, memslot->dirty_bitmap, slot,
				      rel_gfn);
}

/* Dirty logging turned on for @slot of a WP-all VM (kernel/0005-*.patch). */
static void kd_wp_log_enable(struct kvm *kvm,
			     const struct kvm_memory_slot *slot)
{
	lockdep_assert_held(&kvm->slots_lock);
	kd_rs_wp_log_enable(kvm);
}

/*
 * The capabilities and VM ioctls the module adds, each handed to its Rust
 * entry: write-protect-all's (rust/entry/wp_all.rs) or the shared dirty
 * bitmap's (rust/entry/shared_bitmap.rs).
 */
static int kd_check_extension(struct kvm *kvm, long cap)
{
	if (cap == KVM_CAP_DIRTY_SHARED_BITMAP)
		return kd_rs_sbm_check_extension(kvm);
	return kd_rs_check_extension(kvm, cap);
}

static int kd_enable_cap(struct kvm *kvm, struct kvm_enable_cap *cap)
{
	if (cap->cap == KVM_CAP_DIRTY_SHARED_BITMAP)
		return kd_rs_sbm_enable_cap(kvm, cap);
	return kd_rs_enable_cap(kvm, cap);
}

static long kd_vm_ioctl(struct kvm *kvm, unsigned int ioctl, unsigned long arg)
{
	if (ioctl == KVM_GET_DIRTY_BITMAP_FD)
		return kd_rs_get_dirty_bitmap_fd(kvm, arg);
	return kd_rs_vm_ioctl(kvm, ioctl, arg);
}

/* A logged memslot's dirty bitmap (kernel/0013-*.patch). */
static int kd_alloc_dirty_bitmap(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	lockdep_assert_held(&kvm->slots_lock);
	return kd_rs_alloc_dirty_bitmap(kvm, slot->npages, &slot->dirty_bitmap);
}

/* Held as __kvm_memslots() asks: slots_lock, or the VM's last reference gone. */
static bool kd_free_dirty_bitmap(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	lockdep_assert(lockdep_is_held(&kvm->slots_lock) ||
		       !refcount_read(&kvm->users_count));
	return kd_rs_free_dirty_bitmap(kvm, slot->dirty_bitmap);
}

static const struct kvm_dirty_ops kd_ops = {
	.owner = THIS_MODULE,
	.vm_init = kd_rs_vm_init,
	.vm_destroy = kd_rs_vm_destroy,
	.get_dirty_log = kd_get_dirty_log,
	.clear_dirty_log = kd_clear_dirty_log,
	.mark_page_dirty = kd_mark_page_dirty,
	.reset_dirty_rings = kd_rs_reset_dirty_rings,
	.check_extension = kd_check_extension,
	.enable_cap = kd_enable_cap,
	.vm_ioctl = kd_vm_ioctl,
	.wp_log_enable = kd_wp_log_enable,
	.alloc_dirty_bitmap = kd_alloc_dirty_bitmap,
	.free_dirty_bitmap = kd_free_dirty_bitmap,
#ifdef CONFIG_X86
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

/* The module's registrations, made and undone by rust/kvm/registration.rs. */
int kd_ops_register(void)
{
	return kvm_dirty_ops_register(&kd_ops);
}

void kd_ops_unregister(void)
{
	kvm_dirty_ops_unregister(&kd_ops);
}

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
	[KD_SBM_VMS] = "shared_bitmap_vms",
	[KD_SBM_ALLOCS] = "shared_bitmap_allocs",
	[KD_SBM_FREES] = "shared_bitmap_frees",
	[KD_SBM_FILES] = "shared_bitmap_files",
	[KD_SBM_FDS] = "shared_bitmap_fds",
	[KD_SBM_MAPS] = "shared_bitmap_maps",
	[KD_SBM_MAP_REFUSED] = "shared_bitmap_map_refused",
	[KD_SBM_FAULTS] = "shared_bitmap_faults",
	[KD_SBM_SIGBUS] = "shared_bitmap_sigbus",
	[KD_SBM_RETIRED] = "shared_bitmap_retired",
	[KD_SBM_ZAPS] = "shared_bitmap_zaps",
	[KD_SBM_READ_WORDS] = "shared_bitmap_read_words",
	[KD_SBM_READ_PAGES] = "shared_bitmap_read_pages",
	[KD_SBM_READ_RESTORED] = "shared_bitmap_read_restored",
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

/* rust/algo/ring.rs and rust/kvm/ring.rs view these through #[repr(C)] mirrors. */
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
/* rust/algo/wp_all.rs (TableWp) and rust/kvm/wp_all.rs (VmWpState). */
static_assert(sizeof(struct kvm_dirty_table) == 72);
static_assert(offsetof(struct kvm_dirty_table, maybe_writable) == 8);
static_assert(sizeof(struct kvm_dirty_vm) == 24);
static_assert(offsetof(struct kvm_dirty_vm, flags) == 8);
static_assert(offsetof(struct kvm_dirty_vm, priv) == 16);

/* rust/kvm/uapi.rs: write-protect-all's numbers and KVM_ENABLE_CAP's argument. */
static_assert(KD_CAP_DIRTY_WP_ALL == KVM_CAP_DIRTY_WP_ALL);
static_assert(KD_WRITE_PROTECT_ALL_MEM == KVM_WRITE_PROTECT_ALL_MEM);
/* rust/kvm/uapi.rs: the shared dirty bitmap's ioctl argument. */
static_assert(sizeof(struct kd_dirty_bitmap_fd) == sizeof(struct kvm_dirty_bitmap_fd));
static_assert(offsetof(struct kd_dirty_bitmap_fd, flags) ==
	      offsetof(struct kvm_dirty_bitmap_fd, flags));
static_assert(offsetof(struct kd_dirty_bitmap_fd, npages) ==
	      offsetof(struct kvm_dirty_bitmap_fd, npages));
static_assert(offsetof(struct kd_dirty_bitmap_fd, mmap_size) ==
	      offsetof(struct kvm_dirty_bitmap_fd, mmap_size));
static_assert(offsetof(struct kd_dirty_bitmap_fd, pad) ==
	      offsetof(struct kvm_dirty_bitmap_fd, pad));
static_assert(sizeof(struct kvm_enable_cap) == 104);
static_assert(offsetof(struct kvm_enable_cap, cap) == 0);
static_assert(offsetof(struct kvm_enable_cap, flags) == 4);
static_assert(offsetof(struct kvm_enable_cap, args) == 8);

void kd_vm_lock(struct kvm *kvm)
{
	mutex_lock(&kvm->lock);
}

void kd_vm_unlock(struct kvm *kvm)
{
	mutex_unlock(&kvm->lock);
}

u32 kd_created_vcpus(struct kvm *kvm)
{
	lockdep_assert_held(&kvm->lock);
	return kvm->created_vcpus;
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

