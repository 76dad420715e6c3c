/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The migration test's guest: a 64 KiB firmware image (qemu -bios), no
 * BIOS, no kernel.  From the reset vector it enters 32-bit protected mode
 * (flat segments) with paging on (PAE, 2 MiB pages mapping the first GiB
 * to itself) and sweeps the test region for ever, one page after the
 * other.  Sweep i writes into every page its own address and i;
 * before that it checks that the page holds its address and i - 1 (what
 * sweep i - 1 wrote).  A page whose write the dirty tracking lost during a
 * migration comes back on the destination with an older sweep number, and
 * the guest says so the next time it reaches it.
 *
 * It reports on the debug console port 0xe9 (-debugcon): "P" once running,
 * "S" every 16 sweeps, "BAD <page address>" on a mismatch (then it stops),
 * and the sweep number is at the start of the region's first page for the
 * host to read (pmemsave).
 *
 * Test region: REGION_START .. REGION_START + REGION_SIZE (the VM needs at
 * least that much RAM).  QEMU shows a 64 KiB firmware image at 0xf0000
 * (BASE) below 1 MiB, and at 4 GiB - 64 KiB, where the CPU starts 16 bytes
 * below 4 GiB.
 *
 * Why paging: an L2 guest that runs without paging (CR0.PG=0) on L1's
 * nested paging is the case QEMU's TCG got wrong for years (its real-mode
 * page walk skipped the nested page tables: QEMU commits b56617bbcb47 and
 * its follow-up, in Debian's 7.2.15).  Paging did not avoid the emulator
 * issue of Documentation/known-issues.rst (seen with both variants);
 * -DNO_PAGING builds the old variant (payload-nopaging.bin) to compare.
 */
#define REGION_START	0x01000000	/* 16 MiB */
#define REGION_SIZE	0x04000000	/* 64 MiB */
#define PAGE		4096
#define DEBUGCON	0xe9
/* Where the image is below 1 MiB; it is linked at 0 (offsets from CS). */
#define BASE		0xf0000
/* The page tables, in RAM below the stack's page and the test region. */
#define PDPT		0x9000
#define PD		0xa000

	.code16
	.section .text
	.globl _start
_start:
	/* Reached by the far jump at the reset vector: CS = 0xf000. */
	cli
	cld
	xorw	%ax, %ax
	movw	%ax, %ds
	lgdtl	%cs:gdt_desc
	movl	%cr0, %eax
	orl	$1, %eax
	movl	%eax, %cr0
	ljmpl	$0x08, $BASE + pm32

	.code32
pm32:
	movw	$0x10, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movl	$0x7000, %esp
#ifndef NO_PAGING
	/*
	 * PAE: PDPT[0] -> PD, whose 512 entries map 2 MiB each (present,
	 * writable, accessed and dirty preset, so that the CPU never writes
	 * them).  PDPT[1..3] not present.
	 */
	movl	$PD, %edi
	movl	$0xe3, %eax
	movl	$512, %ecx
6:
	movl	%eax, (%edi)
	movl	$0, 4(%edi)
	addl	$0x200000, %eax
	addl	$8, %edi
	loop	6b
	movl	$PDPT, %edi
	xorl	%eax, %eax
	movl	$8, %ecx
	rep stosl
	movl	$PD + 1, PDPT
	movl	$PDPT, %eax
	movl	%eax, %cr3
	movl	%cr4, %eax
	orl	$0x20, %eax		/* CR4.PAE */
	movl	%eax, %cr4
	movl	%cr0, %eax
	orl	$0x80000000, %eax	/* CR0.PG */
	movl	%eax, %cr0
	jmp	8f
8:
#endif
	movb	$'P', %al
	outb	%al, $DEBUGCON

	/* Sweep 1 only writes: nothing was written before it. */
	movl	$1, %ebx		/* ebx: sweep number */
	call	sweep_write
sweep_loop:
	incl	%ebx
	movl	$REGION_START, %edi
1:
	movl	(%edi), %eax		/* page address, as written */
	cmpl	%edi, %eax
	jne	bad
	movl	4(%edi), %eax		/* sweep number, as written */
	leal	-1(%ebx), %ecx
	cmpl	%ecx, %eax
	jne	bad
	movl	%edi, (%edi)
	movl	%ebx, 4(%edi)
	addl	$PAGE, %edi
	cmpl	$REGION_START + REGION_SIZE, %edi
	jb	1b
	testl	$15, %ebx
	jnz	sweep_loop
	movb	$'S', %al
	outb	%al, $DEBUGCON
	jmp	sweep_loop

sweep_write:
	movl	$REGION_START, %edi
1:
	movl	%edi, (%edi)
	movl	%ebx, 4(%edi)
	addl	$PAGE, %edi
	cmpl	$REGION_START + REGION_SIZE, %edi
	jb	1b
	ret

bad:
	/* "BAD " then the page address in hex, then stop. */
	movl	$BASE + bad_msg, %esi
2:
	lodsb
	testb	%al, %al
	jz	3f
	outb	%al, $DEBUGCON
	jmp	2b
3:
	movl	$8, %ecx
4:
	roll	$4, %edi
	movl	%edi, %eax
	andl	$15, %eax
	movb	BASE + hex(%eax), %al
	outb	%al, $DEBUGCON
	loop	4b
	movb	$'\n', %al
	outb	%al, $DEBUGCON
5:
	hlt
	jmp	5b

bad_msg:
	.asciz	"BAD "
hex:
	.ascii	"0123456789abcdef"

	.p2align 3
gdt:
	.quad	0
	/*
	 * Accessed bits preset: the GDT is in ROM, where the CPU cannot set
	 * them.  Under KVM that write to a read-only memslot is emulated, and
	 * the emulated segment load tries it again, for ever.
	 */
	.quad	0x00cf9b000000ffff	/* 0x08: code, flat 4 GiB, 32-bit */
	.quad	0x00cf93000000ffff	/* 0x10: data, flat 4 GiB */
gdt_desc:
	.word	gdt_desc - gdt - 1
	.long	BASE + gdt

	/* The reset vector, the image's last 16 bytes (0xffff0 in the alias). */
	.org	0xfff0
	.code16
reset:
	ljmp	$0xf000, $_start
	.org	0x10000
