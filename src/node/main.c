/*
 * main.c — the macronode binary. Everything lives in the library; see cli.c.
 */
#include "node/node.h"

int main(int argc, char **argv)
{
	return cli_main(argc, argv);
}
