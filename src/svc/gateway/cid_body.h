/*
 * cid_body.h — the request body that names one stored object: exactly
 * {"cid": "b3:<64 lowercase hex>"} (PUT /n/{name}, POST /feed).
 */
#ifndef MN_SVC_GATEWAY_CID_BODY_H
#define MN_SVC_GATEWAY_CID_BODY_H

#include <stddef.h>
#include <stdint.h>

#include "lib/b3.h"

/* 0 with the id in cid; -1 with msg naming what is wrong (not JSON, an
 * unknown field, no cid, not a b3 id). */
int cid_body_parse(const uint8_t *body, size_t len, uint8_t cid[B3_OUT_LEN], char *msg,
                   size_t msglen);

#endif
