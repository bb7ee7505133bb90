/*
 * store_disk_meta.h — the disk backend's type records (store_meta.c says
 * why they exist): the LMDB database "ctype" of the store's environment,
 * id (32 bytes) → version byte + the type (mediatype_parse's grammar, at
 * most STORE_CTYPE_MAX - 1 bytes). The version byte says who named the
 * type: 1 an upload (every record written before reads sniffed), 2 a
 * /media read (store_meta.c). Private to src/svc/storage.
 */
#ifndef MN_SVC_STORAGE_STORE_DISK_META_H
#define MN_SVC_STORAGE_STORE_DISK_META_H

#include <stdint.h>

#include <lmdb.h>

#include "svc/storage/store.h"

#define DISK_CTYPE_VERSION      1u   /* named by an upload */
#define DISK_CTYPE_VERSION_READ 2u   /* sniffed on a read: an upload's replaces it */

/* A read transaction: 0 (out[0] == '\0' when none), -1 error. */
int disk_ctype_get(MDB_env *env, MDB_dbi dbi, const uint8_t id[B3_OUT_LEN],
                   char out[STORE_CTYPE_MAX], bool *by_read);
/* One small write transaction (on a commit worker: storage.c) that keeps
 * the recorded type unless it is a read's and this one an upload's (the
 * check in the same transaction): 0 written, 1 kept, -1 error. */
int disk_ctype_put(MDB_env *env, MDB_dbi dbi, const uint8_t id[B3_OUT_LEN], const char *ctype,
                   bool by_read);

#endif
