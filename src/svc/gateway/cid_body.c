/*
 * cid_body.c — the {"cid": ...} request body (see cid_body.h).
 */
#include "svc/gateway/cid_body.h"

#include <stdio.h>

#include <jansson.h>

int cid_body_parse(const uint8_t *body, size_t len, uint8_t cid[B3_OUT_LEN], char *msg,
                   size_t msglen)
{
	json_error_t je;
	json_t *j = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
	json_t *c = j && json_is_object(j) ? json_object_get(j, "cid") : NULL;
	int rc = -1;

	if (!j || !json_is_object(j))
		snprintf(msg, msglen, "body: want a JSON object {\"cid\":\"b3:<64 hex>\"}");
	else if (json_object_size(j) != (c ? 1u : 0u))
		snprintf(msg, msglen, "body: unknown field (only \"cid\" is accepted)");
	else if (!c)
		snprintf(msg, msglen, "body: missing field \"cid\"");
	else if (!json_is_string(c) ||
	         b3_cid_parse(json_string_value(c), json_string_length(c), cid) != 0)
		snprintf(msg, msglen, "body: cid: want \"b3:<64 lowercase hex>\"");
	else
		rc = 0;
	json_decref(j);
	return rc;
}
