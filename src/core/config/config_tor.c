/*
 * config_tor.c — the tor.* keys, and what Tor mode asks of the others
 * (docs/tor.md "Configuration"). Tor fails closed: a Tor setting the node
 * cannot honour refuses the start, naming the key, instead of serving
 * without the protection the operator asked for.
 */
#include "core/config/config.h"
#include "core/config/config_int.h"
#include "lib/util.h"
#include "mn_build.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* tor.control: a numeric "ip:port" or an absolute path of a control socket.
 * Numeric only, as every address the node dials: a host name would go to
 * the system resolver, outside tor (docs/tor.md "No DNS outside tor"). */
static bool tor_control_ok(const char *v)
{
	struct sockaddr_storage ss;
	unsigned len = 0;
	bool lo = false;

	if (v[0] == '/')
		return strlen(v) < sizeof(((struct sockaddr_un *)0)->sun_path);
	return config_parse_addr(v, &ss, &len, &lo) == 0;
}

/* Loopback or a private range no packet leaves the site from: IPv4
 * 127/8, 10/8, 172.16/12, 192.168/16, 169.254/16; IPv6 ::1, fc00::/7,
 * fe80::/10. Wildcards (every interface) and all else are not. */
static bool addr_private(const char *s)
{
	struct sockaddr_storage ss;
	unsigned len = 0;
	bool lo = false;

	if (config_parse_addr(s, &ss, &len, &lo) != 0)
		return false;
	if (lo)
		return true;
	if (ss.ss_family == AF_INET) {
		const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)&ss)->sin_addr;

		return a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0u) == 16) ||
		       (a[0] == 192 && a[1] == 168) || (a[0] == 169 && a[1] == 254);
	}
	if (ss.ss_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;

		return (a[0] & 0xfeu) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0u) == 0x80);
	}
	return false;
}

#define PRIVATE_RANGES "loopback, 10/8, 172.16/12, 192.168/16, 169.254/16, fc00::/7, fe80::/10"

/*
 * tor.only promises no IP address of the node in anything it publishes,
 * but the dht service speaks UDP in the clear: every DHT participant sees
 * the address it sends from and links it to the node id it signs with. So
 * with tor.only the DHT must be a private network: bound to a loopback or
 * private address, joined only through such addresses; or off.
 */
static int tor_only_dht_check(const mn_config *c, char *err, size_t errlen)
{
	const char *p = c->dht_bootstrap;

	if (!c->tor_only || !(c->services & CONFIG_SVC_DHT))
		return 0;
	if (!addr_private(c->dht_addr))
		return util_fail(err, errlen, "dht.addr: with tor.only the DHT (UDP, in the clear: "
		                 "its participants see this address) must be bound to a loopback or "
		                 "private address (%s), not %s; or leave dht out of services",
		                 PRIVATE_RANGES, c->dht_addr);
	while (*p) {
		char one[CONFIG_ADDR_MAX];
		size_t n = strcspn(p, ",");

		if (n < sizeof one) {
			memcpy(one, p, n);
			one[n] = '\0';
		}
		if (n >= sizeof one || !addr_private(one))
			return util_fail(err, errlen, "dht.bootstrap: with tor.only every entry must be a "
			                 "loopback or private address (%s): a private DHT, whose "
			                 "participants cannot see a public address of the node; not "
			                 "%.*s", PRIVATE_RANGES, (int)(n < 64 ? n : 64), p);
		p += n + (p[n] == ',');
	}
	return 0;
}

int config_tor_check(const mn_config *c, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	unsigned len = 0;
	bool lo = false;

	if (!c->tor_enabled) {
		if (c->tor_only || c->tor_launch)
			return util_fail(err, errlen, "%s: needs tor.enabled: true",
			                 c->tor_only ? "tor.only" : "tor.launch");
		return 0;
	}
	if (!MN_TOR)
		return util_fail(err, errlen, "tor.enabled: this build has no Tor transport "
		                 "(built with -Dtor=disabled)");
	if (!(c->services & CONFIG_SVC_OMNIGATE))
		return util_fail(err, errlen, "tor.enabled: needs the omnigate service (services), "
		                 "whose OAP/1 listener the onion service publishes");
	if (c->tor_launch && c->tor_control[0])
		return util_fail(err, errlen, "tor.control: must be empty with tor.launch (the "
		                 "supervisor's tor uses <runtime_dir>/tor/control)");
	if (!c->tor_launch && !tor_control_ok(c->tor_control))
		return util_fail(err, errlen, "tor.control: expected a numeric ip:port or an "
		                 "absolute control socket path, not \"%s\" (a host name would be "
		                 "resolved outside tor)", c->tor_control);
	if (c->tor_torrc_include[0] && !c->tor_launch)
		return util_fail(err, errlen, "tor.torrc_include: only used with tor.launch: true");
	/* The SOCKS port sees every peer we dial by name: a proxy off this host
	 * would carry onion names and traffic in the clear to it. */
	if (config_parse_addr(c->tor_socks, &ss, &len, &lo) != 0 || !lo)
		return util_fail(err, errlen, "tor.socks: must be a loopback ip:port (%s)", c->tor_socks);
	return tor_only_dht_check(c, err, errlen);
}
