/*
 * peer_fetch_test.h — what only tests call: a fetch with no network, whose
 * requests go to issue() and whose answer stream the test plays by calling
 * the answer callbacks itself (the ones oap_client would call).
 */
#ifndef MN_CORE_OBJECTS_PEER_FETCH_TEST_H
#define MN_CORE_OBJECTS_PEER_FETCH_TEST_H

#include "core/objects/peer_fetch.h"

/* A request the fetch makes: verb and its JSON parameters. 0, or -1 to
 * fail it as a queueing failure would. */
typedef int (*peer_fetch_issue_fn)(void *test_arg, uint16_t verb, const char *params);

peer_fetch *peer_fetch_test_new(struct event_base *base, const peer_fetch_req *req,
                                peer_fetch_sink sink, peer_fetch_done done, void *arg,
                                peer_fetch_issue_fn issue, void *test_arg);
/* HELLO answered: the fetch asks for the outboard. */
void peer_fetch_test_ready(peer_fetch *f);
/* The answer stream of the request last issued. */
extern const oap_call_cbs peer_fetch_test_answer;   /* arg: the fetch */
/* The connection failed. */
void peer_fetch_test_error(peer_fetch *f, oap_client_error e, const char *detail);

#endif
