/*
 * b3.h — BLAKE3 (the project's only hash) and content ids.
 *
 * A content id is "b3:" followed by 64 lowercase hex characters of the
 * unkeyed BLAKE3-256 of the bytes (67 characters in all). Parsing is strict:
 * uppercase hex, a missing prefix or any other length is refused.
 */
#ifndef MN_LIB_B3_H
#define MN_LIB_B3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define B3_OUT_LEN   32
#define B3_HEX_LEN   64
#define B3_CID_LEN   67           /* "b3:" + 64 hex */
#define B3_CID_PREFIX "b3:"

/* One-shot hash of len bytes. */
void b3_hash(const void *data, size_t len, uint8_t out[B3_OUT_LEN]);
/* Keyed hash (key is 32 bytes). */
void b3_keyed_hash(const uint8_t key[B3_OUT_LEN], const void *data, size_t len,
                   uint8_t out[B3_OUT_LEN]);
/* Extendable output: n bytes of BLAKE3's XOF over data (unkeyed / keyed). */
void b3_xof(const void *data, size_t len, uint8_t *out, size_t n);
void b3_keyed_xof(const uint8_t key[B3_OUT_LEN], const void *data, size_t len,
                  uint8_t *out, size_t n);
/* 64 lowercase hex + NUL. */
void b3_hex(const uint8_t digest[B3_OUT_LEN], char out[B3_HEX_LEN + 1]);
/* "b3:<hex>" + NUL. */
void b3_cid_format(const uint8_t digest[B3_OUT_LEN], char out[B3_CID_LEN + 1]);
/* Strict parse of exactly len bytes of s. 0 or -1. */
__attribute__((warn_unused_result))
int b3_cid_parse(const char *s, size_t len, uint8_t out[B3_OUT_LEN]);
/* Strict parse of 64 lowercase hex characters. 0 or -1. */
__attribute__((warn_unused_result))
int b3_hex_parse(const char *s, size_t len, uint8_t out[B3_OUT_LEN]);
/* Constant-time equality of two digests. */
bool b3_equal(const uint8_t a[B3_OUT_LEN], const uint8_t b[B3_OUT_LEN]);

#endif
