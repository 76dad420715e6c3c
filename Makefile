# SPDX-License-Identifier: GPL-2.0
# kvm-dirty: top-level entry points.  The kernel module itself is built by
# Kbuild (scripts/build runs make -C $KDIR M=<a copy of the module sources in
# the cache>); these targets drive the whole chain.
#
# ARCH=arm64 selects the arm64 kernel and VM (default: x86_64).
#
#   make run     install, build, boot the VM, show the module at work
#                (RAW=1: every debugfs counter at the end too)
#   make check   the tests, both architectures; ends with "N passed, N failed"
#   make check-full   make check and the long matrices (sanitizer kernel,
#                every arm64 guest mode, larger perf runs), and the soak lane
#   make soak    the soak lane alone: 30 min of mixed load per boot, x86_64
#                npt=1, npt=0 and arm64
#   make check-cold   make check in a fresh clone with an empty cache
#   make build   install what is missing, build kernel (cached), module, selftests
#   make lint    rustfmt, clippy, checkpatch
#   make vm CMD="..."   run a command in a fresh VM
#   make bench   Rust vs C paths in one VM boot (x86_64, or ARCH=arm64):
#                ratio table and plot
#   make clean   remove build products from the tree (not the cache, where
#                kernels and the module are built)

SHELL := /bin/bash
KD_ARCH := $(if $(filter arm64 aarch64,$(ARCH)),arm64,x86_64)

build:
	scripts/build

run: build
	@mkdir -p out
	sed '$(if $(RAW),s/^demo_summary.sh$$/demo_summary.sh -r/)' \
		selftests/vm/demo-$(KD_ARCH).list > out/demo.list
	scripts/vm-run -f out/demo.list

check:
	scripts/check

check-full:
	scripts/check --full

check-cold:
	scripts/check-cold

soak:
	scripts/check --soak-only

lint:
	scripts/lint

vm: build
	scripts/vm-run -- sh -c '$(CMD)'

bench:
	scripts/bench

# Instructions per call of CLEAR and manual GET, C against Rust (x86_64).
profile: build
	tools/tcg-profile/profile --npt $(or $(NPT),1)

clean:
	rm -rf out selftests/build tools/dirty-algos/target

.PHONY: build run check check-full check-cold soak lint vm bench profile clean
