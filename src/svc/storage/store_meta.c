/*
 * store_meta.c — the per-object metadata record (today: the Content-Type
 * recorded at upload, docs/media.md), shared by both backends through
 * store.h's store_meta_get / store_meta_set.
 *
 * Why a record of its own and not a field of the object record: the
 * object record (store_disk.c, 24 bytes) is what every commit, eviction
 * and the repair loop touch, and objects that arrive without an upload
 * (overlay fetches, REPLICATE) have no type to give; a separate,
 * optional record keeps that format and its code unchanged. The disk
 * backend keeps it in the LMDB database "ctype" (id → version byte +
 * type), the RAM backend beside its object. A record outlives its
 * object's eviction or quarantine (a few bytes): the same bytes stored
 * again are the same object, served with the same type.
 *
 * The first type an upload recorded stays: a later upload of the same
 * bytes cannot change how others' links to them are served. A type
 * sniffed on a /media read (an object stored over OAP/1, fetched from a
 * peer, or stored before types were recorded) is recorded as the read's
 * (by_read) so that it is sniffed once; it is a guess, not a claim, and an
 * upload's type replaces it — so a read racing an upload's META_SET (the
 * object committed, its type not yet recorded) can never cost the
 * uploader the type given. Nothing else replaces a record.
 */
#include "svc/storage/store.h"

#include <string.h>

#include "core/objects/mediatype.h"
#include "lib/log.h"

store_status store_meta_get(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len,
                            char ctype[STORE_CTYPE_MAX], bool *by_read)
{
	store_status rc = st->be->stat(st, id, len);
	char t[MEDIATYPE_MAX];

	ctype[0] = '\0';
	*by_read = false;
	if (rc != STORE_OK)
		return rc;
	if (st->be->meta_get(st, id, ctype, by_read) < 0)
		return STORE_ERROR;
	/* What goes into a header is checked on the way out too: a record
	 * damaged on disk is no type, not a header injection. */
	if (ctype[0] && mediatype_parse(ctype, strlen(ctype), t) < 0) {
		(void)BUG("a recorded media type does not parse");
		ctype[0] = '\0';
	}
	return STORE_OK;
}

store_status store_meta_set(store *st, const uint8_t id[B3_OUT_LEN], const char *want,
                            bool by_read, uint64_t *len, char ctype[STORE_CTYPE_MAX],
                            bool *in_force_by_read)
{
	char t[MEDIATYPE_MAX];
	store_status rc;

	_Static_assert(MEDIATYPE_MAX <= STORE_CTYPE_MAX, "a parsed type fits the record");
	ctype[0] = '\0';
	*in_force_by_read = false;
	/* The gateway parsed it already; the record holds only what the
	 * grammar allows, whoever asks. */
	if (mediatype_parse(want, strlen(want), t) < 0)
		return STORE_BAD;
	if ((rc = store_meta_get(st, id, len, ctype, in_force_by_read)) != STORE_OK ||
	    (ctype[0] && (by_read || !*in_force_by_read)))
		return rc;
	switch (st->be->meta_put(st, id, t, by_read)) {
	case 0:
		memcpy(ctype, t, strlen(t) + 1);
		*in_force_by_read = by_read;
		return STORE_OK;
	case 1:   /* recorded meanwhile (another worker's META_SET) and kept */
		return store_meta_get(st, id, len, ctype, in_force_by_read);
	default:
		return STORE_ERROR;
	}
}

bool store_writes_off_loop(const store *st)
{
	return st->be->ingest_off_loop;
}
