/*
 * config_int.h — private to src/core/config*.c: table access and value
 * formatting shared by the model (config.c) and the output (config_out.c),
 * and the checks kept in files of their own (config_tor.c).
 */
#ifndef MN_CORE_CONFIG_INT_H
#define MN_CORE_CONFIG_INT_H

#include "core/config/config.h"

#define CONFIG_VALUE_MAX   64    /* formatted number/duration/size */

const void *config_cfield(const mn_config *c, const config_key *k);
const char *config_enum_label(const config_key *k, int value);
int         config_int_get(const mn_config *c, const config_key *k);
void        config_names_list(const config_key *k, char *buf, size_t len);
void        config_number_format(const config_key *k, uint64_t v, char *buf, size_t len);
uint64_t    config_number_get(const mn_config *c, const config_key *k);
bool        config_type_is_text(config_type t);
/* The tor.* keys and what Tor mode asks of others (config_tor.c). 0 or -1. */
int         config_tor_check(const mn_config *c, char *err, size_t errlen);

#endif
