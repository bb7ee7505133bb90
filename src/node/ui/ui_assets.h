/*
 * ui_assets.h — the web console's files, compiled into the binary by
 * src/node/ui/embed.py (a meson custom_target: ui_assets.c in the build
 * directory). Served by src/node/admin_ui.c under /ui/.
 */
#ifndef MN_NODE_UI_ASSETS_H
#define MN_NODE_UI_ASSETS_H

#include <stddef.h>

typedef struct ui_asset {
	const char          *name;   /* file name: "index.html", "console.js" */
	const char          *type;   /* Content-Type */
	const unsigned char *data;
	size_t               len;
} ui_asset;

extern const ui_asset ui_assets[];
extern const size_t   ui_assets_len;

#endif
