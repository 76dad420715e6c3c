# shellcheck shell=bash
# Common settings for the kvm-dirty scripts.  Source it; it changes nothing.
# ARCH selects the target: x86_64 (default) or arm64.
#
# The kernel must be built with Debian's rustc-web (1.96) and its matching
# library source, never with rustup's toolchain (no rust-src, E0514).

KD_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Every script behaves the same whether a shell or make (make run, make
# check) started it.  A make started from a make inherits MAKELEVEL and
# MAKEFLAGS and turns into a sub-make: the kselftest lib.mk then leaves
# OUTPUT unset and links the tests without libkvm.  Our makes set their own
# -j, so nothing of the caller's make is needed here.
unset MAKELEVEL MAKEFLAGS MFLAGS MAKEOVERRIDES GNUMAKEFLAGS
KD_CACHE=${KVM_DIRTY_CACHE:-$HOME/.cache/kvm-dirty}
KD_BINDGEN_ROOT=$KD_CACHE/bindgen
BINDGEN=$KD_BINDGEN_ROOT/bin/bindgen
RUSTC=/usr/bin/rustc
HOSTRUSTC=/usr/bin/rustc
RUST_LIB_SRC=/usr/src/rustc-1.96.0/library
# Debian's Rust tools (rustc-web, cargo-web, rustfmt-web, rust-web-clippy:
# 1.96) first on PATH for every script: a fresh machine may have no cargo at
# all, and a rustup toolchain earlier on PATH would lint and test with
# another compiler than the one that builds the kernel.
export PATH=/usr/bin:$PATH
KD_LINUX_TAR=/usr/src/linux-source-6.12.tar.xz

case ${ARCH:-x86_64} in
x86_64 | x86)
	KD_ARCH=x86_64 KD_KARCH=x86 KD_IMAGE=arch/x86/boot/bzImage
	KD_ST_ARCH=x86_64 KD_CROSS= KD_BUSYBOX=/bin/busybox
	;;
arm64 | aarch64)
	KD_ARCH=arm64 KD_KARCH=arm64 KD_IMAGE=arch/arm64/boot/Image
	KD_ST_ARCH=aarch64 KD_CROSS=aarch64-linux-gnu-
	KD_BUSYBOX=$KD_CACHE/busybox-arm64/bin/busybox
	;;
*) echo "unsupported ARCH=$ARCH (x86_64 or arm64)" >&2; return 1 ;;
esac

# KD_KERNEL=kasan selects the sanitizer flavour of the test kernel (both
# arches): kernel/$ARCH-kasan.config on top of kernel/$ARCH.config, with its own
# cache directory, module build and selftests.  KD_KERNEL=perf (both
# arches): kernel/$ARCH-perf.config, no lock and list checking, for benches
# and instruction profiles.
KD_FLAVOUR=$KD_ARCH${KD_KERNEL:+-$KD_KERNEL}
KD_CONFIGS=("$KD_TOP/kernel/$KD_ARCH.config")
if [ -n "${KD_KERNEL:-}" ]; then
	KD_CONFIGS+=("$KD_TOP/kernel/$KD_FLAVOUR.config")
	[ -e "${KD_CONFIGS[1]}" ] || { echo "no kernel/$KD_FLAVOUR.config" >&2; return 1; }
fi

KD_KMAKE=(make ARCH="$KD_KARCH" LLVM=1 RUSTC="$RUSTC" HOSTRUSTC="$HOSTRUSTC"
	BINDGEN="$BINDGEN" RUST_LIB_SRC="$RUST_LIB_SRC")

# The kernel build directory for the current sources, patch and config: a
# change to any of them (or to the toolchain) gives a new key.
kd_kernel_key() {
	{
		dpkg-query -W -f='${Version}\n' linux-source-6.12 rustc-web clang 2>/dev/null
		# What the patches change in this architecture's build: not their
		# mail headers, line offsets, or files under another arch/.
		awk -v arch="$KD_KARCH" 'BEGIN { skip = 1 }
			/^diff --git / { f = $3; sub("^a/", "", f)
				skip = f ~ "^arch/" && f !~ "^arch/" arch "/"
				if (!skip) print "FILE", f; next }
			/^(\+\+\+|---)/ { next }
			/^[+-]/ && skip == 0' "$KD_TOP"/kernel/*.patch
		cat "${KD_CONFIGS[@]}"
		echo bindgen-0.70.1
	} | sha256sum | cut -c1-16
}
KD_KDIR_PARENT=$KD_CACHE/$KD_FLAVOUR-$(kd_kernel_key)
KDIR=$KD_KDIR_PARENT/linux

# The module is built out of the source tree, one directory per kernel
# (arch and flavour), so their objects can coexist.
KD_MODDIR=$KD_CACHE/module-$KD_FLAVOUR
KD_KO=$KD_MODDIR/kvm_dirty.ko
KD_SELFTESTS=$KD_TOP/selftests/build/$KD_FLAVOUR
