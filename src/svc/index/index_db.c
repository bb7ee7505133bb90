/*
 * index_db.c — the table interface (index_db.h): dispatch to the backend
 * and the one rule both backends share, how a publish picks its seq.
 */
#include "svc/index/index_db.h"

#include <stddef.h>

uint64_t index_db_next_seq(uint64_t held, uint64_t floor)
{
	uint64_t top = held > floor ? held : floor;

	return top >= NAME_RECORD_SEQ_MAX ? 0 : top + 1;
}

bool index_db_writes_off_loop(const index_db *db)
{
	return db->ops->off_loop;
}

void index_db_write_run(index_db *db, index_db_write *w)
{
	w->created = false;
	db->ops->write(db, w);
}

index_db_status index_db_get(index_db *db, const index_name *name, name_record *out)
{
	return db->ops->get(db, name, out);
}

index_db_status index_db_history(index_db *db, const index_name *name, name_record *out,
                                 size_t max, size_t *n)
{
	*n = 0;
	return db->ops->history(db, name, out, max, n);
}

void index_db_forget(index_db *db, const index_name *name)
{
	db->ops->forget(db, name);
}

uint64_t index_db_count(index_db *db)
{
	return db->ops->count(db);
}

size_t index_db_scan(index_db *db, index_db_cursor *cur, name_record *out, size_t max)
{
	return max ? db->ops->scan(db, cur, out, max) : 0;
}

void index_db_free(index_db *db)
{
	if (db)
		db->ops->destroy(db);
}
