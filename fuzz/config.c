/*
 * config.c — libFuzzer target for the config parser
 * (src/core/config/config.c: config_load_string, the path `macronode run
 * --config` and `config validate` take for a JSON document).
 *
 * The input is the document (made NUL-terminated; a NUL inside simply ends
 * it). Run:
 *   build-fuzz/fuzz/fuzz_config -max_len=4096 fuzz/corpus/config
 *
 * Invariants checked (abort on violation):
 *   - a refusal always explains itself (a non-empty, terminated message);
 *   - an accepted document prints (config_to_json) and the printed config
 *     loads again over the defaults and prints identically (one table drives
 *     parsing and printing, so what we print we must accept);
 *   - nothing leaks, on success or failure (ASan's leak check).
 * config_validate is not driven: it looks at files the document names.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_ERR_LEN 512u

static void fz_check_reprint(const char *printed)
{
	mn_config again;
	char err[FZ_ERR_LEN] = "";

	config_defaults(&again);
	if (config_load_string(&again, printed, "reprint", err, sizeof err) != 0)
		abort();
	char *second = config_to_json(&again, true);
	if (!second || strcmp(second, printed) != 0)
		abort();
	free(second);
	config_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *doc = malloc(size + 1), err[FZ_ERR_LEN];
	mn_config c;

	if (!doc)
		return 0;
	memcpy(doc, data, size);
	doc[size] = '\0';
	memset(err, 0x55, sizeof err);
	config_defaults(&c);
	if (config_load_string(&c, doc, "fuzz", err, sizeof err) != 0) {
		if (memchr(err, '\0', sizeof err) == NULL || err[0] == '\0')
			abort();
	} else {
		char *printed = config_to_json(&c, true);
		if (printed)
			fz_check_reprint(printed);
		free(printed);
	}
	config_free(&c);
	free(doc);
	return 0;
}
