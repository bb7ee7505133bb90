/*
 * b3tree_test.h — a heap-allocated outboard builder for tests.
 *
 * Production code does not call these; the unit tests do (they observe
 * state the module otherwise keeps to itself). Only b3tree.c and tests/ include this.
 */
#ifndef MN_LIB_B3TREE_TEST_H
#define MN_LIB_B3TREE_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "lib/b3tree.h"

/* Heap-allocated builder (the struct is too big for most stacks); NULL on
 * allocation failure. outboard is borrowed until finish; caller frees both. */
b3tree_builder *b3tree_builder_new(uint8_t *outboard, size_t outboard_cap);
void b3tree_builder_free(b3tree_builder *b);

/* Bytes accepted so far. */
uint64_t b3tree_builder_len(const b3tree_builder *b);

#endif
