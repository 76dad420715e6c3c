/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One vCPU's binary statistics by name, for the libkvm tests (libkvm of
 * 6.12 reads only the VM's: vm_get_stat()).
 */
#ifndef KD_VCPU_STATS_H
#define KD_VCPU_STATS_H

#include <string.h>
#include <unistd.h>

#include "kvm_util.h"

struct kd_vcpu_stats {
	int fd;
	struct kvm_stats_header header;
	struct kvm_stats_desc *desc;
};

static inline void kd_vcpu_stats_open(struct kd_vcpu_stats *s,
				      struct kvm_vcpu *vcpu)
{
	s->fd = vcpu_get_stats_fd(vcpu);
	read_stats_header(s->fd, &s->header);
	s->desc = read_stats_descriptors(s->fd, &s->header);
}

static inline uint64_t kd_vcpu_stat(struct kd_vcpu_stats *s, const char *name)
{
	struct kvm_stats_desc *desc;
	uint64_t data;
	int i;

	for (i = 0; i < s->header.num_desc; i++) {
		desc = get_stats_descriptor(s->desc, i, &s->header);
		if (!strcmp(desc->name, name)) {
			read_stat_data(s->fd, &s->header, desc, &data, 1);
			return data;
		}
	}
	TEST_FAIL("no vCPU statistic %s", name);
	return 0;
}

static inline void kd_vcpu_stats_close(struct kd_vcpu_stats *s)
{
	free(s->desc);
	close(s->fd);
}

#endif /* KD_VCPU_STATS_H */
