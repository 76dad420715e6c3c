/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The migration test's guest on x86: a 64 KiB firmware image (qemu -bios),
 * no BIOS, no kernel.  From the reset vector the boot vCPU enters 32-bit
 * protected mode (flat segments) with paging on (PAE, 2 MiB pages mapping
 * the first 4 GiB to themselves, the top GiB, where the APIC is,
 * uncached), starts the other vCPUs (INIT and SIPI to all but itself, the
 * way firmware does), and every vCPU sweeps its slice of the test region
 * for ever, one page after the other.  Sweep i writes into every page of
 * the slice its own address and i; before that it checks that the page
 * holds its address and i - 1 (what sweep i - 1 wrote).  A page whose
 * write the dirty tracking lost during a migration comes back on the
 * destination with an older sweep number, and the guest says so the next
 * time it reaches it.
 *
 * Parameters, at offset 0x40 of the image (selftests/vm/migrate_lib.sh
 * patches a copy): the test region's start and size (8 bytes each, below
 * 4 GiB), the number of vCPUs that sweep it (4 bytes, 1-4; QEMU's -smp
 * must give at least that many, the others halt), and the write rate of
 * the whole guest in pages per second (4 bytes; 0: as fast as possible).
 * The region is split into one slice per vCPU.  Each vCPU paces its page
 * writes with the TSC, whose rate the boot vCPU measures against 50 ms of
 * the PIT's channel 2 (as Linux's pit_calibrate_tsc does).  A vCPU that
 * falls behind its pace (it was preempted, its writes fault) catches up on
 * at most 100 ms of it: the rate measured while its writes fault is what
 * the guest could do.
 *
 * It reports on the debug console port 0xe9 (-debugcon): "P" once per
 * vCPU when it runs, "S" every 16 sweeps of vCPU 0, "BAD <page address>"
 * on a mismatch (then that vCPU stops).  And in the status page, the page
 * below the test region: per vCPU n, at offset 64 * n, the pages it has
 * written (4 bytes, every page write counted, modulo 2^32) and the sweeps
 * it has completed (4 bytes); the host reads it with pmemsave to measure
 * the guest's write rate before and during a migration.
 *
 * QEMU shows a 64 KiB firmware image at 0xf0000 (BASE) below 1 MiB, and at
 * 4 GiB - 64 KiB, where the CPU starts 16 bytes below 4 GiB.  The other
 * vCPUs start in real mode at the SIPI's page, 0xf1000 (offset 0x1000).
 *
 * Why paging: an L2 guest that runs without paging (CR0.PG=0) on L1's
 * nested paging is the case QEMU's TCG got wrong for years (its real-mode
 * page walk skipped the nested page tables: QEMU commits b56617bbcb47 and
 * its follow-up, in Debian's 7.2.15).  Paging did not avoid the emulator
 * issue of Documentation/known-issues.rst (seen with both variants);
 * -DNO_PAGING builds the old variant (payload-nopaging.bin) to compare,
 * which runs one vCPU.
 */
#define PAGE		4096
#define MAX_VCPUS	4
#define DEBUGCON	0xe9
/* Where the image is below 1 MiB; it is linked at 0 (offsets from CS). */
#define BASE		0xf0000
#define SIPI_VECTOR	0xf1		/* BASE + 0x1000, as a page number */
/* In RAM below the test region: the stacks' top, the vCPUs' count, the page tables. */
#define STACK_TOP	0x7000
#define STACK_SIZE	0x400
#define CPU_COUNT	0x8000
#define TSC_50MS	0x8004		/* TSC ticks in 50 ms */
#define PDPT		0x9000
#define PD		0xa000		/* four, one per GiB */
#define APIC		0xfee00000
#define APIC_SVR	0xf0
#define APIC_ICR_LO	0x300
#define APIC_ICR_HI	0x310
#define ICR_BUSY	(1 << 12)
/* All but self, level assert, INIT or start-up. */
#define ICR_INIT	0x000c4500
#define ICR_SIPI	(0x000c4600 | SIPI_VECTOR)
/* PIT channel 2 counts 59659 ticks of 1.193182 MHz: 50 ms. */
#define PIT_50MS	59659

/* A vCPU's variables, on its stack (%ebp). */
#define V_NEXT_LO	0	/* the next page's TSC deadline */
#define V_NEXT_HI	4
#define V_TPP		8	/* TSC ticks per page of this vCPU; 0: no pacing */
#define V_STATUS	12	/* its entry in the status page */
#define V_START		16	/* its slice */
#define V_END		20
#define V_INDEX		24
#define V_SLACK		28	/* TSC ticks in 100 ms */
#define V_SIZE		32

	.code16
	.section .text
	.globl _start
_start:
	/* Reached by the far jump at the reset vector: CS = 0xf000. */
	jmp	boot16

	/* Offset 0x40: the parameters (migrate_lib.sh's payload_params). */
	.org	0x40
params:
region_start:	.quad	0x01000000	/* 16 MiB */
region_size:	.quad	0x04000000	/* 64 MiB */
nr_vcpus:	.long	1
rate:		.long	0		/* pages per second; 0: as fast as possible */

/*
 * From real mode (CS = 0xf000) to 32-bit protected mode with the flat GDT,
 * at @target: the boot vCPU and the others enter the same way.
 */
	.macro	protected_mode target
	cli
	cld
	xorw	%ax, %ax
	movw	%ax, %ds
	lgdtl	%cs:gdt_desc
	movl	%cr0, %eax
	orl	$1, %eax
	movl	%eax, %cr0
	ljmpl	$0x08, $BASE + \target
	.endm

	.org	0x80
boot16:
	protected_mode boot32

	.code32
boot32:
	movw	$0x10, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movl	$STACK_TOP, %esp
#ifndef NO_PAGING
	/*
	 * PAE: PDPT[0..3] -> four PDs, whose 512 entries each map 2 MiB
	 * (present, writable, accessed and dirty preset, so that the CPU
	 * never writes them); the top GiB (the APIC, the firmware's alias)
	 * with caching disabled.
	 */
	movl	$PD, %edi
	movl	$0xe3, %eax
	movl	$4 * 512, %ecx
1:
	movl	%eax, (%edi)
	movl	$0, 4(%edi)
	cmpl	$512, %ecx		/* the last 512 entries: the top GiB */
	ja	2f
	orl	$0x18, (%edi)		/* PCD | PWT */
2:
	addl	$0x200000, %eax
	addl	$8, %edi
	loop	1b
	movl	$PDPT, %edi
	movl	$PD + 1, %eax
	movl	$4, %ecx
3:
	movl	%eax, (%edi)
	movl	$0, 4(%edi)
	addl	$PAGE, %eax
	addl	$8, %edi
	loop	3b
	call	paging_on
#endif
	/* TSC ticks in 50 ms, for the pace. */
	call	calibrate
	movl	%eax, TSC_50MS
#ifndef NO_PAGING
	/* The others: INIT, then start-up at the SIPI's page, twice. */
	movl	$1, CPU_COUNT
	movl	$0x1ff, APIC + APIC_SVR	/* APIC software-enabled */
	movl	$0, APIC + APIC_ICR_HI
	movl	$ICR_INIT, APIC + APIC_ICR_LO
	call	icr_wait
	call	calibrate		/* 50 ms after INIT */
	movl	$ICR_SIPI, APIC + APIC_ICR_LO
	call	icr_wait
	movl	$ICR_SIPI, APIC + APIC_ICR_LO
	call	icr_wait
#endif
	xorl	%eax, %eax
	jmp	cpu_main

icr_wait:
	testl	$ICR_BUSY, APIC + APIC_ICR_LO
	jnz	icr_wait
	ret

paging_on:
	movl	$PDPT, %eax
	movl	%eax, %cr3
	movl	%cr4, %eax
	orl	$0x20, %eax		/* CR4.PAE */
	movl	%eax, %cr4
	movl	%cr0, %eax
	orl	$0x80000000, %eax	/* CR0.PG */
	movl	%eax, %cr0
	jmp	1f
1:
	ret

/*
 * calibrate: %eax = TSC ticks while PIT channel 2 counts down 50 ms (mode
 * 0: its output, port 0x61 bit 5, goes high at the end).  Uses %ecx, %edx,
 * %esi.
 */
calibrate:
	inb	$0x61, %al
	andb	$~0x02, %al		/* speaker off */
	orb	$0x01, %al		/* channel 2's gate on */
	outb	%al, $0x61
	movb	$0xb0, %al		/* channel 2, low then high byte, mode 0 */
	outb	%al, $0x43
	movb	$PIT_50MS & 0xff, %al
	outb	%al, $0x42
	movb	$PIT_50MS >> 8, %al
	outb	%al, $0x42
	rdtsc
	movl	%eax, %esi
1:
	inb	$0x61, %al
	testb	$0x20, %al
	jz	1b
	rdtsc
	subl	%esi, %eax
	ret

/*
 * cpu_main: vCPU %eax sweeps its slice for ever.  Its variables are on
 * its stack (%ebp); %edi is the page, %ebx the sweep.
 */
cpu_main:
	subl	$V_SIZE, %esp
	movl	%esp, %ebp
	movl	%eax, V_INDEX(%ebp)
	call	nr_vcpus_clamped
	movl	%eax, %ecx
	cmpl	%ecx, V_INDEX(%ebp)
	jae	halt			/* a vCPU beyond the parameter: idle */
	movb	$'P', %al
	outb	%al, $DEBUGCON
	/* Slice: (region_size / vCPUs) rounded down to a page. */
	movl	BASE + region_size, %eax
	xorl	%edx, %edx
	divl	%ecx
	andl	$~(PAGE - 1), %eax
	movl	%eax, %esi
	mull	V_INDEX(%ebp)
	addl	BASE + region_start, %eax
	movl	%eax, V_START(%ebp)
	addl	%esi, %eax
	movl	%eax, V_END(%ebp)
	movl	V_INDEX(%ebp), %eax
	shll	$6, %eax
	addl	BASE + region_start, %eax
	subl	$PAGE, %eax
	movl	%eax, V_STATUS(%ebp)
	/* Ticks per page: tsc_50ms * 20 * vCPUs / rate. */
	movl	$0, V_TPP(%ebp)
	movl	BASE + rate, %esi
	testl	%esi, %esi
	jz	1f
	movl	TSC_50MS, %eax
	mull	%ecx
	movl	$20, %ecx
	mull	%ecx
	movl	$0xffffffff, V_TPP(%ebp)
	cmpl	%esi, %edx
	jae	1f			/* below a page in 2^32 ticks: the slowest */
	divl	%esi
	movl	%eax, V_TPP(%ebp)
1:
	movl	TSC_50MS, %eax
	shll	$1, %eax
	movl	%eax, V_SLACK(%ebp)
	rdtsc
	movl	%eax, V_NEXT_LO(%ebp)
	movl	%edx, V_NEXT_HI(%ebp)

	/* Sweep 1 only writes: nothing was written before it. */
	movl	$1, %ebx
	movl	V_START(%ebp), %edi
2:
	movl	%edi, (%edi)
	movl	%ebx, 4(%edi)
	call	pace
	addl	$PAGE, %edi
	cmpl	V_END(%ebp), %edi
	jb	2b
	movl	V_STATUS(%ebp), %eax
	movl	%ebx, 4(%eax)
sweep_loop:
	incl	%ebx
	movl	V_START(%ebp), %edi
3:
	movl	(%edi), %eax		/* page address, as written */
	cmpl	%edi, %eax
	jne	bad
	movl	4(%edi), %eax		/* sweep number, as written */
	leal	-1(%ebx), %ecx
	cmpl	%ecx, %eax
	jne	bad
	movl	%edi, (%edi)
	movl	%ebx, 4(%edi)
	call	pace
	addl	$PAGE, %edi
	cmpl	V_END(%ebp), %edi
	jb	3b
	movl	V_STATUS(%ebp), %eax
	movl	%ebx, 4(%eax)
	cmpl	$0, V_INDEX(%ebp)
	jne	sweep_loop
	testl	$15, %ebx
	jnz	sweep_loop
	movb	$'S', %al
	outb	%al, $DEBUGCON
	jmp	sweep_loop

/*
 * pace: one more page written (the status counter), then wait for this
 * page's deadline.  A vCPU that fell behind (preempted, or its writes
 * fault) catches up on at most 100 ms of its pace.  Uses %eax, %ecx,
 * %edx, %esi.
 */
pace:
	movl	V_STATUS(%ebp), %eax
	incl	(%eax)
	movl	V_TPP(%ebp), %ecx
	testl	%ecx, %ecx
	jz	3f
1:
	pause
	rdtsc
	cmpl	V_NEXT_HI(%ebp), %edx
	ja	2f
	jb	1b
	cmpl	V_NEXT_LO(%ebp), %eax
	jb	1b
2:
	/* next += ticks per page, but not below now - 100 ms. */
	subl	V_SLACK(%ebp), %eax
	sbbl	$0, %edx
	jb	6f			/* the TSC below 100 ms */
	movl	V_NEXT_LO(%ebp), %esi
	addl	%ecx, %esi
	movl	V_NEXT_HI(%ebp), %ecx
	adcl	$0, %ecx
	cmpl	%edx, %ecx
	ja	4f
	jb	5f
	cmpl	%eax, %esi
	jae	4f
5:
	movl	%eax, %esi
	movl	%edx, %ecx
4:
	movl	%esi, V_NEXT_LO(%ebp)
	movl	%ecx, V_NEXT_HI(%ebp)
3:
	ret
6:
	movl	V_TPP(%ebp), %ecx
	addl	%ecx, V_NEXT_LO(%ebp)
	adcl	$0, V_NEXT_HI(%ebp)
	ret

/* nr_vcpus_clamped: %eax = the parameter, at least 1, at most MAX_VCPUS. */
nr_vcpus_clamped:
	movl	BASE + nr_vcpus, %eax
#ifdef NO_PAGING
	movl	$1, %eax		/* no APIC mapping, no other vCPU */
#endif
	cmpl	$1, %eax
	jae	1f
	movl	$1, %eax
1:
	cmpl	$MAX_VCPUS, %eax
	jbe	2f
	movl	$MAX_VCPUS, %eax
2:
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
halt:
	cli
	hlt
	jmp	halt

/*
 * ap32: another vCPU, in protected mode: its index (the count, atomically
 * incremented), its stack, paging on, then cpu_main.
 */
ap32:
	movw	$0x10, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movl	$1, %eax
	lock xaddl %eax, CPU_COUNT
	movl	%eax, %esp
	shll	$10, %esp		/* STACK_SIZE */
	negl	%esp
	addl	$STACK_TOP, %esp
	cmpl	$MAX_VCPUS, %eax
	jae	halt
	pushl	%eax
	call	paging_on
	popl	%eax
	jmp	cpu_main

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

	/* The other vCPUs' start, at the SIPI's page: CS = 0xf100, IP = 0. */
	.org	0x1000
	.code16
ap16:
	ljmp	$0xf000, $ap16_cs
ap16_cs:
	protected_mode ap32

	/* The reset vector, the image's last 16 bytes (0xffff0 in the alias). */
	.org	0xfff0
reset:
	ljmp	$0xf000, $_start
	.org	0x10000
