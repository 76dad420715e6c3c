/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The migration test's guest on arm64: a bare-metal image for QEMU's
 * "-M virt" under KVM, booted with -kernel.  It carries the arm64 Linux
 * Image header, so QEMU loads it at RAM + 0x80000 and enters it at EL1,
 * MMU off, as it would enter Linux.
 *
 * Each vCPU turns its MMU on with an identity map (below), then sweeps its
 * slice of the test region for ever, one page after the other.  Sweep i
 * writes into every page of the slice the page's address (8 bytes) and i
 * (8 bytes); before that it checks that the page holds its address and
 * i - 1.  A page whose write the dirty tracking lost during a migration
 * comes back on the destination with an older sweep number, and the
 * guest says so the next time it reaches it.
 *
 * Why the MMU is on: a real guest's accesses go through its stage 1, and
 * with the MMU off every data access is Device memory, non-cacheable,
 * which on hardware QEMU's cacheable reads of guest memory (pmemsave, the
 * migration's own page copies) do not see coherently.  The identity map
 * (4K granule, 39-bit VA, level 1 blocks of 1 GiB): the first GiB, where
 * -M virt has its devices, as Device-nGnRnE; the next three, RAM, as
 * Normal write-back.  Stage 2 tracks dirty pages at 4K whatever stage 1
 * maps.
 *
 * Parameters, at offset 0x40 of the image (tools/migration/params.sh
 * patches a copy of it): the test region's start and size (8 bytes each),
 * the number of vCPUs that sweep it (4 bytes, 1-4; the others are started
 * with PSCI CPU_ON), and the write rate of the whole guest in pages per
 * second (4 bytes; 0: as fast as possible).  The region is split into one
 * slice per vCPU; each vCPU paces its page writes with the generic
 * timer's virtual counter.  A vCPU that falls behind its pace (it was
 * preempted, its writes fault) catches up on at most 100 ms of it: the
 * rate measured while its writes fault is what the guest could do.
 *
 * It reports on the PL011 UART: "P" once per vCPU when it runs, "S" every
 * 16 sweeps of vCPU 0, "BAD <page address>" on a mismatch (then that vCPU
 * stops).  And in the status page, the page below the test region: per
 * vCPU n, at offset 64 * n, the pages it has written (4 bytes, counting
 * every page write, modulo 2^32) and the sweeps it has completed (4
 * bytes); the host reads it with pmemsave to measure the guest's write
 * rate before and during a migration.
 */
#define PSCI_CPU_ON	0xc4000003
#define UART		0x09000000	/* -M virt's PL011 */
#define UARTDR		0x00
#define UARTFR		0x18
#define UARTFR_TXFF	(1 << 5)
#define UARTCR		0x30
#define PAGE		4096
#define MAX_VCPUS	4

	.text
	.globl	_start
_start:
	/* The arm64 Image header (Documentation/arch/arm64/booting.rst). */
	b	boot			/* code0 */
	.long	0			/* code1 */
	.quad	0x80000			/* text_offset */
	.quad	image_end - _start	/* image_size */
	.quad	0xa			/* flags: little endian, 4K pages, anywhere */
	.quad	0, 0, 0
	.ascii	"ARM\x64"		/* magic */
	.long	0

	/* Offset 0x40: the parameters (params.sh). */
	.org	0x40
params:
region_start:	.quad	0x41000000	/* RAM + 16 MiB */
region_size:	.quad	0x04000000	/* 64 MiB */
nr_vcpus:	.long	1
rate:		.long	0		/* pages per second; 0: as fast as possible */

	.org	0x80
boot:
	/* The boot vCPU: x0 holds the device tree's address; not used. */
	mov	x25, #0
	bl	build_table
	mov	x26, #UART
	mov	w0, #0x301		/* UARTEN | TXE | RXE */
	str	w0, [x26, #UARTCR]
	bl	start_others
	b	run

secondary:
	/* Started by PSCI CPU_ON with context_id, its index, in x0. */
	mov	x25, x0
	mov	x26, #UART
run:
	bl	mmu_on
	mov	w0, #'P'
	bl	putc

	/* This vCPU's slice [x19, x20) and status entry x22. */
	adr	x0, params
	ldr	x1, [x0, #region_start - params]
	ldr	x2, [x0, #region_size - params]
	ldr	w3, [x0, #nr_vcpus - params]
	bl	clamp_vcpus
	udiv	x2, x2, x3
	and	x2, x2, #~(PAGE - 1)
	madd	x19, x2, x25, x1
	add	x20, x19, x2
	sub	x22, x1, #PAGE
	add	x22, x22, x25, lsl #6

	/* x23: counter ticks per page of this vCPU (0: no pacing). */
	ldr	w4, [x0, #rate - params]
	mov	x23, #0
	cbz	w4, 1f
	mrs	x5, cntfrq_el0
	mul	x5, x5, x3
	udiv	x23, x5, x4
1:
	mrs	x28, cntfrq_el0		/* x28: 100 ms of the counter */
	mov	x5, #10
	udiv	x28, x28, x5
	mrs	x24, cntvct_el0		/* x24: the next page's deadline */

	/* Sweep 1 only writes: nothing was written before it. */
	mov	x21, #1
	mov	x9, x19
2:
	stp	x9, x21, [x9]
	bl	pace
	add	x9, x9, #PAGE
	cmp	x9, x20
	b.lo	2b
	str	w21, [x22, #4]

sweep:
	add	x21, x21, #1
	sub	x10, x21, #1
	mov	x9, x19
3:
	ldp	x11, x12, [x9]
	cmp	x11, x9
	b.ne	bad
	cmp	x12, x10
	b.ne	bad
	stp	x9, x21, [x9]
	bl	pace
	add	x9, x9, #PAGE
	cmp	x9, x20
	b.lo	3b
	str	w21, [x22, #4]
	cbnz	x25, sweep
	tst	x21, #15
	b.ne	sweep
	mov	w0, #'S'
	bl	putc
	b	sweep

/*
 * pace: one more page written (the status counter), then wait for this
 * page's deadline.  A vCPU that fell behind (preempted, or its writes
 * fault) catches up on at most 100 ms (x28) of its pace.  Uses x13-x15.
 */
pace:
	ldr	w13, [x22]
	add	w13, w13, #1
	str	w13, [x22]
	cbz	x23, 2f
1:
	isb
	mrs	x14, cntvct_el0
	cmp	x14, x24
	b.lo	1b
	add	x24, x24, x23
	subs	x15, x14, x28
	b.lo	2f			/* the counter below 100 ms */
	cmp	x24, x15
	csel	x24, x15, x24, lo
2:
	ret

/* clamp_vcpus: w3 = min(max(w3, 1), MAX_VCPUS). */
clamp_vcpus:
	cmp	w3, #1
	mov	w5, #1
	csel	w3, w5, w3, lo
	cmp	w3, #MAX_VCPUS
	mov	w5, #MAX_VCPUS
	csel	w3, w5, w3, hi
	ret

/* start_others: PSCI CPU_ON for vCPUs 1 .. nr_vcpus - 1, at "secondary". */
start_others:
	mov	x27, x30
	adr	x0, params
	ldr	w3, [x0, #nr_vcpus - params]
	bl	clamp_vcpus
	mov	w28, w3
	mov	x19, #1
1:
	cmp	x19, x28
	b.hs	2f
	ldr	x0, =PSCI_CPU_ON
	mov	x1, x19			/* MPIDR: -M virt's Aff0 is the index */
	adr	x2, secondary
	mov	x3, x19
	hvc	#0
	cbnz	x0, cpu_on_failed
	add	x19, x19, #1
	b	1b
2:
	ret	x27

cpu_on_failed:
	adr	x19, cpu_on_msg
	b	halt_msg

/*
 * build_table: the level 1 table of the identity map, then its lines
 * cleaned and invalidated to the point of coherency: it was written with
 * the MMU off (non-cacheable), and the walker reads it through the cache.
 */
build_table:
	adr	x0, l1_table
	mov	x1, #0x401		/* block, AttrIndx 0 (Device), AF */
	str	x1, [x0]
	mov	x2, #1
1:
	mov	x1, #0x705		/* block, AttrIndx 1 (Normal), inner shareable, AF */
	orr	x1, x1, x2, lsl #30
	str	x1, [x0, x2, lsl #3]
	add	x2, x2, #1
	cmp	x2, #4
	b.lo	1b
	dsb	sy
	mov	x2, #0
2:
	add	x1, x0, x2
	dc	civac, x1
	add	x2, x2, #64
	cmp	x2, #PAGE
	b.lo	2b
	dsb	sy
	ret

/* mmu_on: this vCPU's stage 1 on the identity map, data and instruction caches on. */
mmu_on:
	adr	x0, vectors
	msr	vbar_el1, x0
	mov	x0, #0xff00		/* attr 1: Normal WB RA WA; attr 0: Device-nGnRnE */
	msr	mair_el1, x0
	/* T0SZ 25 (39-bit VA), IRGN0/ORGN0 WB WA, SH0 inner, TG0 4K, EPD1, IPS 36 bits */
	ldr	x0, =(25 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23) | (1 << 32))
	msr	tcr_el1, x0
	adr	x0, l1_table
	msr	ttbr0_el1, x0
	isb
	tlbi	vmalle1
	dsb	nsh
	isb
	mrs	x0, sctlr_el1
	mov	x1, #(1 << 0) | (1 << 2)	/* M, C */
	orr	x1, x1, #(1 << 12)		/* I */
	orr	x0, x0, x1
	msr	sctlr_el1, x0
	isb
	ret

/* putc: w0 on the UART. */
putc:
1:
	ldr	w1, [x26, #UARTFR]
	tbnz	w1, #5, 1b		/* UARTFR_TXFF */
	str	w0, [x26, #UARTDR]
	ret

/* bad: "BAD " and the page address x9 in hex, then this vCPU stops. */
bad:
	adr	x19, bad_msg
	bl	puts
	bl	hex64
	b	halt

/*
 * exception: any exception taken (none is expected: no interrupt is
 * enabled): "EXC", its syndrome and address, then this vCPU stops.
 */
exception:
	adr	x19, exc_msg
	bl	puts
	mrs	x9, esr_el1
	bl	hex64
	mrs	x9, elr_el1
	bl	hex64
	b	halt

/* hex64: x9 in 16 hex digits and a newline.  Uses x16, x17. */
hex64:
	mov	x17, x30
	mov	x16, #16
1:
	ror	x9, x9, #60
	and	x0, x9, #15
	adr	x1, hex
	ldrb	w0, [x1, x0]
	bl	putc
	subs	x16, x16, #1
	b.ne	1b
	mov	w0, #'\n'
	bl	putc
	ret	x17

halt_msg:
	bl	puts
halt:
	wfi
	b	halt

/* puts: the NUL-terminated string at x19. */
puts:
	mov	x27, x30
1:
	ldrb	w0, [x19], #1
	cbz	w0, 2f
	bl	putc
	b	1b
2:
	ret	x27

	.ltorg
bad_msg:
	.asciz	"BAD "
exc_msg:
	.asciz	"EXC "
cpu_on_msg:
	.asciz	"PSCI CPU_ON failed\n"
hex:
	.ascii	"0123456789abcdef"

	.balign	2048
vectors:
	.rept	16
	.balign	128
	b	exception
	.endr

	.balign	PAGE
l1_table:
	.space	PAGE
image_end:
