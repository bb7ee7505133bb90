/*
 * readiness.pml — the readiness DAG and the shed order, checked with SPIN.
 *
 * The same rules as src/node/readiness.c (the verdict) and the HTTP core's
 * admission (src/core/net/http.c: facets shed at 3/4 of the in-flight cap,
 * core routes at the cap, the admin plane never), over a node with a
 * replicated gateway (GW_TOTAL workers), one storage process and,
 * optionally, the dht service (not required: an island node is ready).
 *
 * Two ways to run it (`make models` does both):
 *   spin -a readiness.pml && cc -o pan pan.c && ./pan
 *       exhaustive check of every assertion over every state and every
 *       single-step change of it (see `step` below);
 *   spin -DTABLE readiness.pml
 *       prints one row per state with the verdict the model gives; the table
 *       is kept in tests/vectors/readiness_table.txt, and a unit test
 *       (tests/unit/node/test_readiness.c) walks it through the C readiness
 *       function, so model and code cannot drift apart unnoticed.
 *
 * Properties:
 *   P1 no core or facet request is admitted while a required dependency is
 *      down (storage unreachable from the worker, no policy, draining);
 *   P2 facets are shed first: a facet is admitted only where a core request
 *      would be, and the admin plane is always answered;
 *   P3 the node degrades before it turns NotReady: a rise in load never
 *      makes it NotReady, and losing one gateway worker (or one worker's
 *      storage circuit) from a ready node makes it degraded, not NotReady;
 *   P4 every reason for NotReady is a required dependency that is down;
 *   P5 the DHT never decides NotReady: whatever its state (off, down,
 *      crash-looping, bootstrapping, up) the verdict is the one the node
 *      has without it, at worst degraded instead of ready.
 */

#define GW_TOTAL 2
#define CAP      4              /* in-flight cap; facets shed at 3/4 of it */
#define FACET_AT 3

/* dht service states */
#define DHT_OFF   0   /* not in services */
#define DHT_DOWN  1   /* no worker serving */
#define DHT_LOOP  2   /* crash-looping */
#define DHT_BOOT  3   /* serving, routing table empty (bootstrapping) */
#define DHT_UP    4   /* serving, bootstrapped (or an island by configuration) */

#define READY    0
#define DEGRADED 1
#define NOTREADY 2

typedef state_t {
	byte gw_up;      /* gateway workers serving, 0..GW_TOTAL */
	bit  gw_loop;    /* the gateway is crash-looping */
	byte gw_cut;     /* serving workers whose storage circuit is open, 0..gw_up */
	byte load;       /* in-flight requests on each worker, 0..CAP */
	bit  st_up;      /* the storage process is serving */
	bit  st_loop;    /* storage is crash-looping */
	bit  policy;     /* a valid policy bundle is loaded */
	bit  draining;
	bit  parity;     /* every child on the supervisor's build */
	bit  entropy;    /* >= 128 bits */
	byte dht;        /* DHT_OFF .. DHT_UP */
}

inline worsen(cur, by) { if :: (by > cur) -> cur = by :: else -> skip fi }

/* One required service's contribution (readiness.c service_eval). */
inline gateway_verdict(s, v)
{
	if
	:: s.gw_loop -> worsen(v, NOTREADY)
	:: !s.gw_loop && s.gw_up == 0 -> worsen(v, NOTREADY)
	:: !s.gw_loop && s.gw_up > 0 && s.gw_cut == s.gw_up -> worsen(v, NOTREADY)
	:: !s.gw_loop && s.gw_up > 0 && s.gw_cut > 0 && s.gw_cut < s.gw_up -> worsen(v, DEGRADED)
	:: !s.gw_loop && s.gw_up > 0 && s.gw_cut == 0 && s.gw_up < GW_TOTAL -> worsen(v, DEGRADED)
	:: else -> skip
	fi;
	/* shedding (load at the facet threshold) on a serving worker: degraded */
	if
	:: s.gw_up > 0 && s.load >= FACET_AT -> worsen(v, DEGRADED)
	:: else -> skip
	fi
}

inline storage_verdict(s, v)
{
	if
	:: s.st_loop || !s.st_up -> worsen(v, NOTREADY)
	:: else -> skip
	fi
}

/* Not required: down, looping or bootstrapping degrades, never more. */
inline dht_verdict(s, v)
{
	if
	:: s.dht == DHT_DOWN || s.dht == DHT_LOOP || s.dht == DHT_BOOT -> worsen(v, DEGRADED)
	:: else -> skip
	fi
}

inline verdict(s, v)
{
	v = READY;
	if :: s.draining -> worsen(v, NOTREADY) :: else -> skip fi;
	storage_verdict(s, v);
	gateway_verdict(s, v);
	if :: !s.entropy -> worsen(v, NOTREADY) :: else -> skip fi;
	if :: !s.parity -> worsen(v, NOTREADY) :: else -> skip fi;
	if :: !s.policy -> worsen(v, NOTREADY) :: else -> skip fi;
	dht_verdict(s, v)
}

/* Admission on one serving worker whose circuit is closed (cut == 0) or
 * open (cut == 1): class 0 core, 1 facet, 2 admin. */
inline admitted(s, cut, class, a)
{
	if
	:: class == 2 -> a = 1
	:: else ->
		a = (s.gw_up > 0 && !cut && s.st_up && s.policy && !s.draining &&
		     ((class == 0 && s.load < CAP) || (class == 1 && s.load < FACET_AT)))
	fi
}

inline check_admission(s)
{
	bit core0, facet0, admin0, core1, facet1;
	admitted(s, 0, 0, core0);
	admitted(s, 0, 1, facet0);
	admitted(s, 0, 2, admin0);
	admitted(s, 1, 0, core1);
	admitted(s, 1, 1, facet1);
	/* P1 */
	assert(!core0 || (s.st_up && s.policy && !s.draining));
	assert(!core1 && !facet1);
	/* P2 */
	assert(!facet0 || core0);
	assert(admin0)
}

/* P4: NotReady only with a required dependency down. */
inline check_reasons(s, v)
{
	assert(v != NOTREADY ||
	       s.draining || !s.st_up || s.st_loop || s.gw_loop || s.gw_up == 0 ||
	       s.gw_cut == s.gw_up || !s.entropy || !s.parity || !s.policy)
}

state_t s, t, u;
byte v, w, v0;

#ifdef TABLE
/* Every state, in a fixed order, with its verdict (one row each). */
init {
	byte a, b, c, d, e, f, g, h, i, j, k;
	printf("# gw_up gw_loop gw_cut load st_up st_loop policy draining parity entropy dht verdict\n");
	for (a : 0 .. GW_TOTAL) {
	for (b : 0 .. 1) {
	for (c : 0 .. a) {
	for (d : 0 .. CAP) {
	for (e : 0 .. 1) {
	for (f : 0 .. 1) {
	for (g : 0 .. 1) {
	for (h : 0 .. 1) {
	for (i : 0 .. 1) {
	for (j : 0 .. 1) {
	for (k : DHT_OFF .. DHT_UP) {
		s.gw_up = a; s.gw_loop = b; s.gw_cut = c; s.load = d; s.st_up = e;
		s.st_loop = f; s.policy = g; s.draining = h; s.parity = i; s.entropy = j;
		s.dht = k;
		verdict(s, v);
		printf("%d %d %d %d %d %d %d %d %d %d %d %d\n", s.gw_up, s.gw_loop, s.gw_cut, s.load,
		       s.st_up, s.st_loop, s.policy, s.draining, s.parity, s.entropy, s.dht, v)
	} } } } } } } } } } }
}
#else
/* Any state (chosen nondeterministically: pan explores them all), then one
 * single-step change of it. */
init {
	byte a, b, c, d, e, f, g, h, i, j, k;
	select(a : 0 .. GW_TOTAL);
	select(b : 0 .. 1);
	select(c : 0 .. a);
	select(d : 0 .. CAP);
	select(e : 0 .. 1);
	select(f : 0 .. 1);
	select(g : 0 .. 1);
	select(h : 0 .. 1);
	select(i : 0 .. 1);
	select(j : 0 .. 1);
	select(k : DHT_OFF .. DHT_UP);
	s.gw_up = a; s.gw_loop = b; s.gw_cut = c; s.load = d; s.st_up = e;
	s.st_loop = f; s.policy = g; s.draining = h; s.parity = i; s.entropy = j;
	s.dht = k;
	verdict(s, v);
	check_admission(s);
	check_reasons(s, v);
	d_step { t.gw_up = s.gw_up; t.gw_loop = s.gw_loop; t.gw_cut = s.gw_cut; t.load = s.load;
	         t.st_up = s.st_up; t.st_loop = s.st_loop; t.policy = s.policy;
	         t.draining = s.draining; t.parity = s.parity; t.entropy = s.entropy;
	         t.dht = s.dht }
	/* P5: the same node without the DHT */
	d_step { u.gw_up = s.gw_up; u.gw_loop = s.gw_loop; u.gw_cut = s.gw_cut; u.load = s.load;
	         u.st_up = s.st_up; u.st_loop = s.st_loop; u.policy = s.policy;
	         u.draining = s.draining; u.parity = s.parity; u.entropy = s.entropy;
	         u.dht = DHT_OFF }
	verdict(u, v0);
	assert(v == v0 || (v == DEGRADED && v0 == READY));
	assert(v == v0 || (s.dht != DHT_OFF && s.dht != DHT_UP));
	/* P3: the steps that must degrade before they fail */
	if
	:: s.load < CAP -> t.load = s.load + 1          /* load rises */
	:: s.gw_up > 0 && s.gw_cut < s.gw_up -> t.gw_up = s.gw_up - 1  /* a healthy worker dies */
	:: s.gw_cut < s.gw_up -> t.gw_cut = s.gw_cut + 1  /* one worker's circuit opens */
	:: s.dht == DHT_UP -> t.dht = DHT_BOOT             /* the DHT loses every node */
	:: s.dht == DHT_UP -> t.dht = DHT_LOOP             /* the dht service crash-loops */
	:: else -> skip                                 /* nothing left to lose */
	fi;
	verdict(t, w);
	assert(!(v == READY && w == NOTREADY))
}
#endif
