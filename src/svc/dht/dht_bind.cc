/*
 * dht_bind.cc — see dht_bind.h. The smallest C++ this project holds: each
 * function is a few calls into dht::DhtRunner.
 *
 * It relies on one fact of OpenDHT 2.4's C binding (c/opendht.cpp,
 * dht_runner_new): a dht_runner* is a reinterpret_cast of a heap
 * dht::DhtRunner*, so the runner the C binding created and still drives
 * (bootstrap, delete) is the one these functions configure. If a
 * later OpenDHT changes that, this file must change with it
 * (scripts/deps.sh pins Debian's 2.4.12).
 */
#include "svc/dht/dht_bind.h"

#include <cstdio>
#include <cstring>
#include <exception>

#include <opendht.h>

namespace {

dht::DhtRunner *runner_of(dht_runner *r)
{
	return reinterpret_cast<dht::DhtRunner *>(r);
}

const dht::DhtRunner *runner_of(const dht_runner *r)
{
	return reinterpret_cast<const dht::DhtRunner *>(r);
}

/* Our value type for kind: kept value_ttl_s, judged by cfg->judge when it
 * is new to this node (store policy) and when it would replace the value
 * of the same id (edit policy; a value of another type never replaces one
 * of ours). */
dht::ValueType type_of(const dht_bind_cfg *cfg, uint8_t kind)
{
	dht_bind_judge judge = cfg->judge;
	void *arg = cfg->judge_arg;
	size_t max = cfg->value_max;
	auto store = [judge, arg, kind, max](dht::InfoHash key, std::shared_ptr<dht::Value> &v,
	                                     const dht::InfoHash &, const dht::SockAddr &) {
		return v && v->data.size() <= max &&
		       judge(kind, key.data(), v->id, nullptr, 0, v->data.data(), v->data.size(), arg);
	};
	auto edit = [judge, arg, kind, max](dht::InfoHash key, const std::shared_ptr<dht::Value> &old,
	                                    std::shared_ptr<dht::Value> &v, const dht::InfoHash &,
	                                    const dht::SockAddr &) {
		return old && v && v->type == old->type && v->data.size() <= max &&
		       judge(kind, key.data(), v->id, old->data.data(), old->data.size(),
		             v->data.data(), v->data.size(), arg);
	};
	return dht::ValueType(static_cast<dht::ValueType::Id>(DHT_BIND_TYPE_BASE + kind), "macronode",
	                      std::chrono::seconds(cfg->value_ttl_s), store, edit);
}

} // namespace

extern "C" int dht_bind_run(dht_runner *r, const dht_bind_cfg *cfg, char *err, size_t errlen)
{
	try {
		dht::DhtRunner::Config config;
		dht::SockAddr sa(cfg->addr, cfg->addrlen);
		if (sa.getFamily() == AF_INET6)
			config.bind6 = sa;
		else
			config.bind4 = sa;
		config.threaded = true;
		config.dht_config.node_config.network = cfg->network;
		config.dht_config.node_config.maintain_storage = false;
		runner_of(r)->run(config, dht::DhtRunner::Context{});
		/* Every macronode node keeps our values for the record lifetime,
		 * no larger than one record, verified, one per signer. */
		for (uint8_t kind = 1; kind <= DHT_BIND_KINDS; kind++)
			runner_of(r)->registerType(type_of(cfg, kind));
		if (runner_of(r)->getBoundPort(sa.getFamily()) == 0) {
			std::snprintf(err, errlen, "cannot bind the UDP address");
			return -1;
		}
		return 0;
	} catch (const std::exception &e) {
		std::snprintf(err, errlen, "%s", e.what());
	} catch (...) {
		std::snprintf(err, errlen, "OpenDHT failed to start");
	}
	return -1;
}

extern "C" void dht_bind_put(dht_runner *r, const uint8_t key[DHT_BIND_ID_LEN], uint8_t kind,
                             uint64_t id, const uint8_t *v, size_t n,
                             void (*done)(bool ok, void *arg), void *arg)
{
	try {
		dht::InfoHash h;
		std::memcpy(h.data(), key, DHT_BIND_ID_LEN);
		auto val = std::make_shared<dht::Value>(v, n);
		val->type = static_cast<dht::ValueType::Id>(DHT_BIND_TYPE_BASE + kind);
		val->id = id;   /* the signer's: replaces its previous value (dht_value.h) */
		runner_of(r)->put(h, std::move(val), [done, arg](bool ok) { done(ok, arg); });
	} catch (...) {
		done(false, arg);   /* on this thread: the caller's done copes with either */
	}
}

extern "C" void dht_bind_get(dht_runner *r, const uint8_t key[DHT_BIND_ID_LEN], uint8_t kind,
                             bool (*value)(const uint8_t *data, size_t n, uint64_t id, void *arg),
                             void (*done)(bool ok, void *arg), void *arg)
{
	try {
		dht::InfoHash h;
		std::memcpy(h.data(), key, DHT_BIND_ID_LEN);
		dht::GetCallback gcb = [value, arg](const std::vector<std::shared_ptr<dht::Value>> &vals) {
			for (const auto &v : vals)
				if (v && !value(v->data.data(), v->data.size(), v->id, arg))
					return false;
			return true;
		};
		dht::DoneCallbackSimple dcb = [done, arg](bool ok) { done(ok, arg); };
		dht::Where w;
		w.valueType(static_cast<dht::ValueType::Id>(DHT_BIND_TYPE_BASE + kind));
		runner_of(r)->get(h, std::move(gcb), std::move(dcb), dht::Value::Filter{}, std::move(w));
	} catch (...) {
		done(false, arg);
	}
}

extern "C" size_t dht_bind_stored(const dht_runner *r)
{
	try {
		return runner_of(r)->getStoreSize().second;
	} catch (...) {
		return 0;
	}
}

extern "C" void dht_bind_nodes(const dht_runner *r, unsigned *good, unsigned *dubious)
{
	*good = *dubious = 0;
	try {
		auto s4 = runner_of(r)->getNodesStats(AF_INET);
		auto s6 = runner_of(r)->getNodesStats(AF_INET6);
		*good = s4.good_nodes + s6.good_nodes;
		*dubious = s4.dubious_nodes + s6.dubious_nodes;
	} catch (...) {
	}
}

extern "C" size_t dht_bind_export(const dht_runner *r, uint8_t (*ids)[DHT_BIND_ID_LEN],
                                  struct sockaddr_storage *addrs, socklen_t *lens, size_t max)
{
	size_t n = 0;
	try {
		for (const auto &ne : runner_of(r)->exportNodes()) {
			if (n == max)
				break;
			std::memcpy(ids[n], ne.id.data(), DHT_BIND_ID_LEN);
			std::memcpy(&addrs[n], &ne.ss, sizeof addrs[n]);
			lens[n] = ne.sslen;
			n++;
		}
	} catch (...) {
	}
	return n;
}
