/*
 * client.h — `macronode put` and `macronode get`: the OAP/1 client for
 * people (docs/oap.md), over TLS 1.3 with the node's own TLS policy
 * (tls_client_new). Blocking sockets with deadlines: a command line tool,
 * not an event loop.
 *
 * Both commands verify what they move: put hashes the file as it streams it
 * and checks the id the node answers; get hashes what it receives and, for a
 * whole object, declares success only if the bytes hash to the requested id
 * (an -o file appears only then: it is written under a temporary name and
 * renamed). A range cannot be checked against the id without the outboard,
 * so for ranges the client relies on the node's verify-before-serve and
 * checks the length.
 */
#ifndef MN_NODE_CLIENT_H
#define MN_NODE_CLIENT_H

/* Exit codes of both commands. */
enum {
	CLIENT_EXIT_OK        = 0,
	CLIENT_EXIT_RUNTIME   = 1,   /* network, TLS, refusal by the node, local I/O */
	CLIENT_EXIT_USAGE     = 2,
	CLIENT_EXIT_INTEGRITY = 3,   /* bytes that do not hash to their id, wrong length,
	                                --expect mismatch, an object the node quarantined */
};

/* argv[0] is the command word ("put" / "get"). Return an exit code above. */
int client_put_main(int argc, char **argv);
int client_get_main(int argc, char **argv);

#endif
