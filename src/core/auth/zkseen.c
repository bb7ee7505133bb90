/*
 * zkseen.c — replay cache of holder proofs (see zkseen.h).
 */
#include "core/auth/zkseen.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/log.h"

#define ZKSEEN_MAGIC UINT64_C(0x4d4e5a4b5345454e)   /* "MNZKSEEN" */
#define ZKSEEN_ALIGN 64u

typedef struct zkseen_slot {
	uint8_t  fp[ZKSEEN_FP_LEN];
	uint64_t expires_s;        /* 0 = empty */
} zkseen_slot;

typedef struct zkseen_group {
	alignas(ZKSEEN_ALIGN) pthread_mutex_t lock;   /* process-shared, robust */
	zkseen_slot slots[ZKSEEN_PROBE];
} zkseen_group;

typedef struct zkseen_hdr {
	uint64_t magic;
	uint64_t area_len;
	uint32_t ngroups;
	uint32_t group_size;
} zkseen_hdr;

#define ZKSEEN_HDR_SPACE ((sizeof(zkseen_hdr) + ZKSEEN_ALIGN - 1) / ZKSEEN_ALIGN * ZKSEEN_ALIGN)

struct zkseen {
	zkseen_group *groups;
	uint32_t      ngroups;   /* checked at open, not trusted from the area */
	void         *own;       /* zkseen_new's mapping */
	size_t        own_len;
};

static uint32_t zkseen_ngroups(uint32_t entries)
{
	uint32_t n = (entries + ZKSEEN_PROBE - 1) / ZKSEEN_PROBE;
	return n ? n : 1;
}

size_t zkseen_area_size(uint32_t entries)
{
	return ZKSEEN_HDR_SPACE + (size_t)zkseen_ngroups(entries) * sizeof(zkseen_group);
}

int zkseen_area_init(void *area, size_t len, uint32_t entries)
{
	zkseen_hdr *h = area;
	uint32_t n = zkseen_ngroups(entries);
	zkseen_group *g;
	pthread_mutexattr_t a;
	int rc = -1;

	if (!area || ((uintptr_t)area % ZKSEEN_ALIGN) || len < zkseen_area_size(entries))
		return -1;
	g = (zkseen_group *)((uint8_t *)area + ZKSEEN_HDR_SPACE);
	memset(area, 0, zkseen_area_size(entries));
	if (pthread_mutexattr_init(&a) != 0)
		return -1;
	if (pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) != 0 ||
	    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) != 0)
		goto out;
	for (uint32_t i = 0; i < n; i++)
		if (pthread_mutex_init(&g[i].lock, &a) != 0)
			goto out;
	h->area_len = zkseen_area_size(entries);
	h->ngroups = n;
	h->group_size = (uint32_t)sizeof(zkseen_group);
	h->magic = ZKSEEN_MAGIC;
	rc = 0;
out:
	pthread_mutexattr_destroy(&a);
	return rc;
}

zkseen *zkseen_open(void *area, size_t len)
{
	const zkseen_hdr *h = area;
	zkseen *z;

	if (!area || len < ZKSEEN_HDR_SPACE || h->magic != ZKSEEN_MAGIC || h->area_len != len ||
	    h->group_size != sizeof(zkseen_group) || h->ngroups == 0 ||
	    ZKSEEN_HDR_SPACE + (size_t)h->ngroups * sizeof(zkseen_group) != len)
		return NULL;
	if (!(z = calloc(1, sizeof *z)))
		return NULL;
	z->groups = (zkseen_group *)((uint8_t *)area + ZKSEEN_HDR_SPACE);
	z->ngroups = h->ngroups;
	return z;
}

zkseen *zkseen_new(uint32_t entries)
{
	size_t len = zkseen_area_size(entries);
	void *area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	zkseen *z;

	if (area == MAP_FAILED)
		return NULL;
	if (zkseen_area_init(area, len, entries) != 0 || !(z = zkseen_open(area, len))) {
		munmap(area, len);
		return NULL;
	}
	z->own = area;
	z->own_len = len;
	return z;
}

void zkseen_free(zkseen *z)
{
	if (!z)
		return;
	if (z->own)
		munmap(z->own, z->own_len);
	free(z);
}

static int zkseen_lock(zkseen_group *g)
{
	int rc = pthread_mutex_lock(&g->lock);

	if (rc == EOWNERDEAD) {
		/* Slots are written whole under the lock; a half-written one is
		 * at worst a stale fingerprint that expires on its own. */
		rc = pthread_mutex_consistent(&g->lock);
		log_kv(LOG_LEVEL_WARN, "zk replay group lock taken over from a dead process", LOG_END);
	}
	return rc == 0 ? 0 : -1;
}

zkseen_result zkseen_insert(zkseen *z, const uint8_t *fp, uint64_t expires_s, uint64_t now_s)
{
	uint32_t idx = ((uint32_t)fp[0] | (uint32_t)fp[1] << 8 | (uint32_t)fp[2] << 16 |
	                (uint32_t)fp[3] << 24) % z->ngroups;
	zkseen_group *g = &z->groups[idx];
	zkseen_slot *free_slot = NULL;
	zkseen_result r = ZKSEEN_FULL;

	if (zkseen_lock(g) != 0)
		return ZKSEEN_FULL;
	for (uint32_t i = 0; i < ZKSEEN_PROBE; i++) {
		zkseen_slot *s = &g->slots[i];
		bool live = s->expires_s != 0 && s->expires_s >= now_s;
		if (live && memcmp(s->fp, fp, ZKSEEN_FP_LEN) == 0) {
			r = ZKSEEN_REPLAY;
			goto out;
		}
		if (!live && !free_slot)
			free_slot = s;
	}
	if (free_slot) {
		memcpy(free_slot->fp, fp, ZKSEEN_FP_LEN);
		free_slot->expires_s = expires_s ? expires_s : 1;
		r = ZKSEEN_NEW;
	}
out:
	(void)pthread_mutex_unlock(&g->lock);
	return r;
}
