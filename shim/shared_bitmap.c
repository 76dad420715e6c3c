// SPDX-License-Identifier: GPL-2.0
/*
 * The C half of the dirty bitmap shared with user space
 * (Documentation/api.rst, "KVM_GET_DIRTY_BITMAP_FD"): the file a
 * descriptor names, its mmap() and page-fault handler, its read(), and the
 * kernel calls rust/kvm/shared_bitmap.rs makes.  Each function is one call or
 * the translation of one; what is allowed, mapped and freed, and when, is
 * decided in Rust (rust/algo/shared_bitmap.rs: check_map(), fault(),
 * check_read(), Lifetime).
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kvm_host.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/vmalloc.h>

#include "../include/kvm_dirty_shim.h"

void *kd_vmalloc_zeroed(u64 bytes)
{
	return __vmalloc(bytes, GFP_KERNEL_ACCOUNT | __GFP_ZERO);
}

void kd_vfree(void *area)
{
	vfree(area);
}

bool kd_any_dirty_bitmap(struct kvm *kvm)
{
	struct kvm_memory_slot *slot;
	int i, bkt;

	lockdep_assert_held(&kvm->slots_lock);
	for (i = 0; i < kvm_arch_nr_memslot_as_ids(kvm); i++)
		kvm_for_each_memslot(slot, bkt, __kvm_memslots(kvm, i))
			if (slot->dirty_bitmap)
				return true;
	return false;
}

struct mm_struct *kd_vm_mm_grab(struct kvm *kvm)
{
	mmgrab(kvm->mm);
	return kvm->mm;
}

void kd_mm_drop(struct mm_struct *mm)
{
	mmdrop(mm);
}

bool kd_current_mm_is(struct mm_struct *mm)
{
	return current->mm == mm;
}

static vm_fault_t kd_sbm_fault(struct vm_fault *vmf)
{
	int r = kd_rs_sbm_fault(vmf->vma->vm_file->private_data, vmf->vma,
				vmf->address, vmf->pgoff);

	/* The handler mapped the page itself (or SIGBUS, or out of memory). */
	return r ? vmf_error(r) : VM_FAULT_NOPAGE;
}

/*
 * No ->map_pages: under the per-VMA lock the core then retries the fault with
 * mmap_lock held, which vm_insert_page() in the handler expects.
 */
static const struct vm_operations_struct kd_sbm_vm_ops = {
	.fault = kd_sbm_fault,
};

static int kd_sbm_mmap(struct file *file, struct vm_area_struct *vma)
{
	const struct kd_sbm_map map = {
		.pgoff = vma->vm_pgoff,
		.pages = vma_pages(vma),
		.shared = vma->vm_flags & VM_SHARED,
		.exec = vma->vm_flags & VM_EXEC,
	};
	int r = kd_rs_sbm_mmap(file->private_data, &map);

	if (r)
		return r;
	/* The flags rust/algo/shared_bitmap.rs check_map() names. */
	vm_flags_mod(vma, VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP | VM_MIXEDMAP,
		     VM_MAYEXEC);
	vma->vm_ops = &kd_sbm_vm_ops;
	return 0;
}

static ssize_t kd_sbm_read(struct file *file, char __user *buf, size_t count,
			   loff_t *ppos)
{
	long r = kd_rs_sbm_read(file->private_data, (u64)(unsigned long)buf,
				count, *ppos);

	if (r > 0)
		*ppos += r;
	return r;
}

/* Every mapping holds the file: the last one is gone too. */
static int kd_sbm_release(struct inode *inode, struct file *file)
{
	kd_rs_sbm_release(file->private_data, file->f_mapping);
	return 0;
}

/* .owner: an open file, hence a mapping, keeps the module loaded. */
static const struct file_operations kd_sbm_fops = {
	.owner = THIS_MODULE,
	.mmap = kd_sbm_mmap,
	.read = kd_sbm_read,
	.llseek = generic_file_llseek,
	.release = kd_sbm_release,
};

struct file *kd_sbm_file_create(void *priv, u64 size,
				struct address_space **mapping)
{
	struct file *file;

	file = anon_inode_create_getfile("kvm-dirty-bitmap", &kd_sbm_fops, priv,
					 O_RDWR | O_CLOEXEC, NULL);
	if (IS_ERR(file))
		return file;
	file->f_mode |= FMODE_PREAD;
	i_size_write(file_inode(file), size);
	*mapping = file->f_mapping;
	return file;
}

int kd_fd_reserve(void)
{
	return get_unused_fd_flags(O_CLOEXEC);
}

void kd_fd_install(int fd, struct file *file)
{
	fd_install(fd, file);
}

void kd_fd_unreserve(int fd)
{
	put_unused_fd(fd);
}

void kd_fput(struct file *file)
{
	fput(file);
}

int kd_sbm_insert_page(struct vm_area_struct *vma, u64 addr, void *kaddr)
{
	return vm_insert_page(vma, addr, vmalloc_to_page(kaddr));
}

void kd_sbm_zap(struct address_space *mapping)
{
	unmap_mapping_range(mapping, 0, 0, 1);
}
