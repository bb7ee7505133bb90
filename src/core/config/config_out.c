/*
 * config_out.c — the config as text: `config print`, the JSON handed to
 * children, and docs/config.md, all from the table in config_table.c.
 */
#include "core/config/config.h"
#include "core/config/config_int.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char config_docs_intro[] =
	"# Configuration reference\n\n"
	"Generated from `src/core/config/config_table.c` by `macronode config docs`; do not edit by hand.\n\n"
	"Values are applied in this order, later wins: built-in defaults, the JSON file "
	"(`--config` or `RON_CONFIG`), `RON_*` environment variables (an empty variable counts "
	"as unset), then command-line flags. The file is strict: an unknown key, a wrong type or "
	"an out-of-range value is an error naming the key. Durations are strings with a unit "
	"(`\"250ms\"`, `\"5s\"`, `\"1m\"`, `\"1h\"`; a bare number is refused so units cannot be "
	"confused). Sizes are a byte count or a string with a unit (`\"64KiB\"`, `\"1MiB\"`, "
	"`\"1GiB\"`, `\"1TiB\"`, or SI `\"1KB\"`/`\"1MB\"`). Reload class `live` keys are applied "
	"by `SIGHUP` or `POST /api/v1/reload`; a reload that changes a `restart` key is refused. "
	"Secrets are read only from the environment or a token file and are never printed.\n\n";

/* ---- output ------------------------------------------------------------ */

static json_t *services_json(const mn_config *c, const config_key *k)
{
	uint32_t bits;
	json_t *a = json_array();
	memcpy(&bits, config_cfield(c, k), sizeof bits);
	for (const config_enum_name *n = k->names; a && n->name; n++)
		if (!n->alias && (bits & (uint32_t)n->value) &&
		    json_array_append_new(a, json_string(n->name)) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* "a,b" → ["a","b"]. */
static json_t *addr_list_json(const char *list)
{
	json_t *a = json_array();

	for (const char *p = list; a && *p;) {
		size_t n = strcspn(p, ",");
		if (json_array_append_new(a, json_stringn(p, n)) != 0) {
			json_decref(a);
			return NULL;
		}
		p += n + (p[n] == ',');
	}
	return a;
}

static json_t *value_json(const mn_config *c, const config_key *k)
{
	char buf[CONFIG_VALUE_MAX];
	bool b;
	switch (k->type) {
	case CONFIG_T_STRING:
	case CONFIG_T_ADDR:
	case CONFIG_T_PATH:
		return json_string(config_cfield(c, k));
	case CONFIG_T_DURATION:
	case CONFIG_T_SIZE:
		config_number_format(k, config_number_get(c, k), buf, sizeof buf);
		return json_string(buf);
	case CONFIG_T_U32:
		return json_integer((json_int_t)config_number_get(c, k));
	case CONFIG_T_BOOL:
		memcpy(&b, config_cfield(c, k), sizeof b);
		return json_boolean(b);
	case CONFIG_T_ENUM:
		return json_string(config_enum_label(k, config_int_get(c, k)));  /* NULL if invalid */
	case CONFIG_T_SERVICES:
		return services_json(c, k);
	case CONFIG_T_ADDR_LIST:
	case CONFIG_T_ORIGIN_LIST:
		return addr_list_json(config_cfield(c, k));
	case CONFIG_T_SECRET:
		break;
	}
	return NULL;
}

int config_diff(const mn_config *old, const mn_config *nw, FILE *out, size_t *restart)
{
	size_t changed = 0;

	*restart = 0;
	for (size_t i = 0; i < config_table_len; i++) {
		const config_key *k = &config_table[i];
		json_t *a, *b;
		char *ta = NULL, *tb = NULL;

		if (k->type == CONFIG_T_SECRET)
			continue;   /* never shown; tokens are re-read on every reload */
		a = value_json(old, k);
		b = value_json(nw, k);
		if (!json_equal(a, b)) {
			ta = a ? json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
			tb = b ? json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
			fprintf(out, "%s: %s -> %s (%s)\n", k->key, ta ? ta : "null", tb ? tb : "null",
			        k->reload == CONFIG_RELOAD_RESTART ? "restart" : "live");
			changed++;
			*restart += k->reload == CONFIG_RELOAD_RESTART;
			free(ta);
			free(tb);
		}
		json_decref(a);
		json_decref(b);
	}
	return (int)changed;
}

/* The object that holds key's last segment, creating sections as needed. */
static json_t *json_section(json_t *root, const char *key, const char **leaf)
{
	json_t *o = root;
	const char *p = key, *dot;
	while (o && (dot = strchr(p, '.')) != NULL) {
		char name[CONFIG_KEY_MAX];
		size_t n = (size_t)(dot - p);
		if (n >= sizeof name)
			return NULL;
		memcpy(name, p, n);
		name[n] = '\0';
		json_t *next = json_object_get(o, name);
		if (!next && json_object_set_new(o, name, next = json_object()) != 0)
			return NULL;
		o = next;
		p = dot + 1;
	}
	*leaf = p;
	return o;
}

/* The file-shaped document; secrets are never part of it. */
static json_t *config_json(const mn_config *c)
{
	json_t *root = json_object();
	for (size_t i = 0; root && i < config_table_len; i++) {
		const config_key *k = &config_table[i];
		const char *leaf = NULL;
		if (k->secret)
			continue;
		json_t *parent = json_section(root, k->key, &leaf);
		json_t *v = value_json(c, k);
		if (!parent || !v || json_object_set_new(parent, leaf, v) != 0) {
			json_decref(root);
			return NULL;
		}
	}
	return root;
}

int config_print(const mn_config *c, FILE *out)
{
	json_t *root = config_json(c);
	if (!root)
		return -1;
	int rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (rc != 0 || fputc('\n', out) == EOF || fflush(out) != 0)
		return -1;
	return 0;
}

char *config_to_json(const mn_config *c, bool include_secrets)
{
	(void)include_secrets;  /* see config.h: secrets are never emitted */
	json_t *root = config_json(c);
	if (!root)
		return NULL;
	char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	return s;
}

/* ---- docs -------------------------------------------------------------- */

static const char *type_doc_name(config_type t)
{
	static const char *const names[] = {
		[CONFIG_T_STRING] = "string", [CONFIG_T_ADDR] = "addr", [CONFIG_T_PATH] = "path",
		[CONFIG_T_DURATION] = "duration", [CONFIG_T_SIZE] = "size", [CONFIG_T_U32] = "u32",
		[CONFIG_T_BOOL] = "bool", [CONFIG_T_ENUM] = "enum", [CONFIG_T_SERVICES] = "list",
		[CONFIG_T_SECRET] = "secret", [CONFIG_T_ADDR_LIST] = "addr list",
		[CONFIG_T_ORIGIN_LIST] = "origin list",
	};
	return (size_t)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static void range_doc(const config_key *k, char *buf, size_t len)
{
	char lo[CONFIG_VALUE_MAX], hi[CONFIG_VALUE_MAX];
	if (k->type == CONFIG_T_ENUM || k->type == CONFIG_T_SERVICES) {
		config_names_list(k, buf, len);
	} else if (k->type == CONFIG_T_BOOL) {
		snprintf(buf, len, "true, false");
	} else if (k->type == CONFIG_T_ADDR_LIST) {
		snprintf(buf, len, "0..%d of ip:port", CONFIG_ADDR_LIST_N);
	} else if (k->type == CONFIG_T_ORIGIN_LIST) {
		snprintf(buf, len, "0..%d of scheme://host[:port]", CONFIG_ORIGIN_LIST_N);
	} else if (config_type_is_text(k->type) || k->type == CONFIG_T_SECRET) {
		snprintf(buf, len, "%s%llu..%llu %s", k->type == CONFIG_T_ADDR ? "ip:port, " : "",
		         (unsigned long long)k->min, (unsigned long long)k->max,
		         k->type == CONFIG_T_SECRET ? "chars" : "bytes");
	} else {
		config_number_format(k, k->min, lo, sizeof lo);
		config_number_format(k, k->max, hi, sizeof hi);
		snprintf(buf, len, "%s..%s", lo, hi);
	}
}

/* One markdown cell; '|' would end the cell early. */
static void md_cell(FILE *out, const char *s, bool code)
{
	fputs(code ? "| `" : "| ", out);
	for (; *s; s++) {
		if (*s == '|')
			fputc('\\', out);
		fputc(*s, out);
	}
	fputs(code ? "` " : " ", out);
}

/* "gateway,storage" → `["gateway","storage"]`, as the file spells it. */
static void docs_services_default(FILE *out, const char *def)
{
	fputs("| `[", out);
	for (const char *p = def; *p;) {
		size_t n = strcspn(p, ",");
		fprintf(out, "%s\"%.*s\"", p == def ? "" : ",", (int)n, p);
		p += n + (p[n] == ',');
	}
	fputs("]` ", out);
}

static void docs_row(FILE *out, const config_key *k)
{
	char range[CONFIG_ERR_MAX];
	range_doc(k, range, sizeof range);
	md_cell(out, k->key, true);
	md_cell(out, type_doc_name(k->type), false);
	if (k->def && (k->type == CONFIG_T_SERVICES || k->type == CONFIG_T_ADDR_LIST ||
	               k->type == CONFIG_T_ORIGIN_LIST))
		docs_services_default(out, k->def);
	else if (k->def && config_type_is_text(k->type))
		fprintf(out, "| `\"%s\"` ", k->def);
	else
		md_cell(out, k->def ? k->def : "unset", k->def != NULL);
	md_cell(out, range, false);
	md_cell(out, k->reload == CONFIG_RELOAD_LIVE ? "live" : "restart", false);
	md_cell(out, k->env ? k->env : "", k->env != NULL);
	md_cell(out, k->help, false);
	fputs("|\n", out);
}

int config_write_docs(FILE *out)
{
	fputs(config_docs_intro, out);
	fputs("| key | type | default | range | reload | env | description |\n", out);
	fputs("|---|---|---|---|---|---|---|\n", out);
	for (size_t i = 0; i < config_table_len; i++)
		docs_row(out, &config_table[i]);
	return ferror(out) || fflush(out) != 0 ? -1 : 0;
}

/* ---- macronode.json(5) ---------------------------------------------------- */

/* Text as mdoc body lines: one sentence a line (mandoc's "new sentence,
 * new line"), wrapped at spaces before 72 columns, a line never starting
 * with '.' or '\'', backslashes escaped. */
static void man_text(FILE *out, const char *s)
{
	size_t col = 0;

	for (; *s; s++) {
		if (col == 0 && (*s == '.' || *s == '\''))
			col += (size_t)fprintf(out, "\\&");
		if (*s == '\\') {
			col += (size_t)fprintf(out, "\\e");
		} else if ((*s == '.' || *s == '?' || *s == '!') && s[1] == ' ' &&
		           (isupper((unsigned char)s[2]) || s[2] == '`')) {
			fprintf(out, "%c\n", *s);   /* the sentence ends: the next starts a line */
			s++;
			col = 0;
		} else if (*s == ' ' && col + strcspn(s + 1, " ") >= 76) {
			fputc('\n', out);
			col = 0;
		} else if (!(*s == ' ' && col == 0)) {
			fputc(*s, out);
			col++;
		}
	}
	if (col)
		fputc('\n', out);
}

static const char config_man_head[] =
	".\\\" Generated by `macronode config man` from the config table\n"
	".\\\" (src/core/config/config_table.c); do not edit: run `make man`.\n"
	".Dd December 6, 2026\n"
	".Dt MACRONODE.JSON 5\n"
	".Os\n"
	".Sh NAME\n"
	".Nm macronode.json\n"
	".Nd configuration file of the macronode content-addressed node\n"
	".Sh DESCRIPTION\n"
	"The configuration of\n"
	".Xr macronode 8\n"
	"is one JSON object whose sections hold the keys below:\n"
	".Ql {\"gateway\": {\"workers\": 2}}\n"
	"sets\n"
	".Cm gateway.workers .\n"
	"Every key is optional; an unknown key, a value of the wrong type or out of\n"
	"its range is refused with an error naming the file, the key and its\n"
	"position.\n"
	"The effective value of a key is, from lowest to highest precedence: its\n"
	"default, the file, its environment variable, then the command line flags.\n"
	"Sizes take a suffix (KiB, MiB, GiB), durations a unit (ms, s, m, h, d).\n"
	".Pp\n"
	"A reload\n"
	".Pq Dv SIGHUP No or Ic POST /api/v1/reload\n"
	"applies the keys marked live at once and is refused when a key marked\n"
	"restart differs;\n"
	".Ic macronode config diff\n"
	"says which before the file is changed.\n"
	".Sh KEYS\n"
	".Bl -tag -width Ds\n";

static const char config_man_tail[] =
	".El\n"
	".Sh FILES\n"
	".Bl -tag -width Ds\n"
	".It Pa ./macronode.json\n"
	"read by\n"
	".Ic macronode run\n"
	"when neither\n"
	".Fl -config\n"
	"nor\n"
	".Ev RON_CONFIG\n"
	"names another file.\n"
	".El\n"
	".Sh EXAMPLES\n"
	"Print the effective configuration, which loads back as a file:\n"
	".Dl $ macronode config print > macronode.json\n"
	"Check a file as the node would judge it:\n"
	".Dl $ macronode config validate macronode.json\n"
	".Sh SEE ALSO\n"
	".Xr macronode 8\n"
	".Pp\n"
	"The same reference in markdown:\n"
	".Pa docs/config.md .\n";

static void man_row(FILE *out, const config_key *k)
{
	char range[CONFIG_ERR_MAX], line[CONFIG_ERR_MAX + 2];

	range_doc(k, range, sizeof range);
	fprintf(out, ".It Cm %s Pq %s\n", k->key, type_doc_name(k->type));
	man_text(out, k->help);
	fputs(".Pp\n", out);
	if (k->def && k->def[0])
		fprintf(out, "Default:\n.Ql %s ;\n", k->def);
	else
		fputs("Default: unset;\n", out);
	snprintf(line, sizeof line, "%s;", range);
	fputs("range:\n", out);
	man_text(out, line);
	fprintf(out, "reload: %s.\n", k->reload == CONFIG_RELOAD_LIVE ? "live" : "restart");
	if (k->env)
		fprintf(out, "Environment:\n.Ev %s .\n", k->env);
}

int config_write_man(FILE *out)
{
	fputs(config_man_head, out);
	for (size_t i = 0; i < config_table_len; i++)
		man_row(out, &config_table[i]);
	fputs(config_man_tail, out);
	return ferror(out) || fflush(out) != 0 ? -1 : 0;
}
