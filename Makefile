# SPDX-License-Identifier: GPL-2.0
# kvm-dirty: top-level entry points.  The kernel module itself is built by
# Kbuild (make -C $KDIR M=$PWD); these targets drive the whole chain.
#
#   make run     install, build, boot the VM, show the module at work
#   make check   the tests; ends with "N passed, N failed"
#   make build   install what is missing, build kernel (cached), module, selftests
#   make lint    rustfmt, clippy, checkpatch
#   make vm CMD="..."   run a command in a fresh VM
#   make clean   remove build products from the tree (not the kernel cache)

SHELL := /bin/bash

build:
	scripts/build

run: build
	scripts/vm-run -f selftests/vm/demo.list

check:
	scripts/check

lint:
	scripts/lint

vm: build
	scripts/vm-run -- sh -c '$(CMD)'

clean:
	rm -rf out selftests/build tools/dirty-algos/target
	rm -f rust/shim_bindings_generated.rs kvm_dirty.ko
	find . -name '*.o' -o -name '*.cmd' -o -name '*.mod' -o -name '*.mod.c' \
		-o -name modules.order -o -name Module.symvers | xargs rm -f

.PHONY: build run check lint vm clean
