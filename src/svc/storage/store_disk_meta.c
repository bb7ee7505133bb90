/*
 * store_disk_meta.c — the disk backend's type records (see
 * store_disk_meta.h).
 */
#include "svc/storage/store_disk_meta.h"

#include <string.h>

#include "lib/log.h"

int disk_ctype_get(MDB_env *env, MDB_dbi dbi, const uint8_t id[B3_OUT_LEN],
                   char out[STORE_CTYPE_MAX], bool *by_read)
{
	MDB_val k = { B3_OUT_LEN, (void *)(uintptr_t)id }, v;
	MDB_txn *txn;
	uint8_t ver = 0;
	int rc;

	out[0] = '\0';
	*by_read = false;
	if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
		return -1;
	rc = mdb_get(txn, dbi, &k, &v);
	if (rc == 0)
		ver = ((const uint8_t *)v.mv_data)[0];
	if (rc == 0 && (v.mv_size < 2 || v.mv_size > STORE_CTYPE_MAX ||
	                (ver != DISK_CTYPE_VERSION && ver != DISK_CTYPE_VERSION_READ))) {
		(void)BUG("type record of unknown shape");
		rc = MDB_CORRUPTED;
	} else if (rc == 0) {
		memcpy(out, (const uint8_t *)v.mv_data + 1, v.mv_size - 1);
		out[v.mv_size - 1] = '\0';
		*by_read = ver == DISK_CTYPE_VERSION_READ;
	}
	mdb_txn_abort(txn);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : -1;
}

int disk_ctype_put(MDB_env *env, MDB_dbi dbi, const uint8_t id[B3_OUT_LEN], const char *ctype,
                   bool by_read)
{
	uint8_t buf[STORE_CTYPE_MAX];
	size_t n = strlen(ctype);
	MDB_val k = { B3_OUT_LEN, (void *)(uintptr_t)id }, v = { n + 1, buf }, old;
	MDB_txn *txn;
	int rc;

	if (n == 0 || n >= STORE_CTYPE_MAX || mdb_txn_begin(env, NULL, 0, &txn) != 0)
		return -1;
	buf[0] = by_read ? DISK_CTYPE_VERSION_READ : DISK_CTYPE_VERSION;
	memcpy(buf + 1, ctype, n);
	/* store_meta_set's rule, decided in this write transaction, so a
	 * META_SET on another worker that read the same record meanwhile
	 * cannot also win: a recorded type stays unless it is a read's and
	 * this one an upload's. */
	rc = mdb_get(txn, dbi, &k, &old);
	if (rc == 0 && (by_read || old.mv_size < 1 ||
	                ((const uint8_t *)old.mv_data)[0] != DISK_CTYPE_VERSION_READ)) {
		mdb_txn_abort(txn);
		return 1;
	}
	if ((rc != 0 && rc != MDB_NOTFOUND) || mdb_put(txn, dbi, &k, &v, 0) != 0) {
		mdb_txn_abort(txn);
		return -1;
	}
	return mdb_txn_commit(txn) == 0 ? 0 : -1;
}
