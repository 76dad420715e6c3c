// SPDX-License-Identifier: GPL-2.0
/*
 * kvm_dirty.ko cannot be unloaded while a VM is bound to it, and can once the
 * VM is gone.  Expects the module loaded with bind_vms=1; leaves it unloaded.
 *
 * rmmod_busy --hold: create one VM (bound, if the module binds new VMs), say
 * "held" on stdout, and keep it until killed; rmmod_under_load.sh uses it so
 * that no rmmod attempt can find the module idle between two test VMs.
 *
 * rmmod_busy --unload-loop: try to unload the module every 100 ms, as
 * rmmod does (delete_module, O_NONBLOCK), until SIGTERM; then print
 * "tries N refused N unloaded N" and exit.  One process for the whole run:
 * a shell loop of rmmod forks two processes per attempt, and that fork churn
 * beside a nested npt=1 guest is what exposes the emulator's memory
 * corruption documented in Documentation/known-issues.rst.
 */
#include <errno.h>
#include <signal.h>
#include <time.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kd_counters.h"
#include "kselftest.h"

static int unload(void)
{
	return syscall(SYS_delete_module, "kvm_dirty", O_NONBLOCK) ? -errno : 0;
}

static int hold(void)
{
	int kvm = open("/dev/kvm", O_RDWR);

	if (kvm < 0 || ioctl(kvm, KVM_CREATE_VM, 0) < 0) {
		perror("rmmod_busy: holding a VM");
		return 1;
	}
	printf("held\n");
	fflush(stdout);
	for (;;)
		pause();	/* until a signal ends us; exit closes the VM */
}

static int unload_loop(void)
{
	const struct timespec period = { .tv_nsec = 100 * 1000 * 1000 };
	long tries = 0, refused = 0, unloaded = 0;
	sigset_t term;

	/* SIGTERM stays pending until sigtimedwait() takes it: no handler. */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	do {
		int r = unload();

		tries++;
		if (r == -EWOULDBLOCK || r == -EBUSY)
			refused++;
		else if (r == 0)
			unloaded++;
		else
			fprintf(stderr, "rmmod_busy: delete_module: %s\n",
				strerror(-r));
	} while (sigtimedwait(&term, NULL, &period) < 0);
	printf("tries %ld refused %ld unloaded %ld\n", tries, refused, unloaded);
	return 0;
}

int main(int argc, char **argv)
{
	int kvm, vm, r;
	long live;

	if (argc > 1 && !strcmp(argv[1], "--hold"))
		return hold();
	if (argc > 1 && !strcmp(argv[1], "--unload-loop"))
		return unload_loop();

	ksft_print_header();
	ksft_set_plan(3);

	kvm = open("/dev/kvm", O_RDWR);
	if (kvm < 0)
		ksft_exit_skip("/dev/kvm: %s\n", strerror(errno));
	live = kd_counter("vms_live");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		ksft_exit_fail_msg("KVM_CREATE_VM: %s\n", strerror(errno));

	ksft_test_result(kd_counter("vms_live") == live + 1,
			 "a new VM is bound (vms_live %ld -> %ld)\n", live,
			 kd_counter("vms_live"));

	r = unload();
	ksft_test_result(r == -EWOULDBLOCK || r == -EBUSY,
			 "unload refused while a VM is bound: %d (%s)\n", r,
			 strerror(-r));

	close(vm);	/* the last reference: the VM is destroyed now */
	r = unload();
	ksft_test_result(r == 0, "unload once the VM is gone: %d (%s)\n", r,
			 strerror(-r));
	close(kvm);
	ksft_finished();
}
