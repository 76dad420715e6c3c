/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Runs a libkvm test's vCPU until its guest's next GUEST_SYNC, for the
 * tests whose guest does one step per run.
 */
#ifndef KD_RUN_H
#define KD_RUN_H

#include "kvm_util.h"
#include "test_util.h"
#include "ucall_common.h"

/* A guest assert fails the test as the guest's; any other exit by its reason. */
static inline void kd_run_to_sync(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	vcpu_run(vcpu);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_SYNC:
		return;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
	default:
		TEST_FAIL("vCPU %u: exit reason %s, not a sync", vcpu->id,
			  exit_reason_str(vcpu->run->exit_reason));
	}
}

#endif
