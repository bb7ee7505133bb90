-- bench/facets_codes.lua — wrk script of the storm drill (facets_storm.py):
-- the same request over and over, counting answers by status across every
-- wrk thread; prints `LAT <p50_ms> <p95_ms>` and `CODE <status> <count>`.
local threads = {}

setup = function(thread)
	table.insert(threads, thread)
end

init = function(args)
	codes = {}
end

response = function(status, headers, body)
	codes[status] = (codes[status] or 0) + 1
end

done = function(summary, latency, requests)
	io.write(string.format("LAT %.3f %.3f\n", latency:percentile(50) / 1000,
		latency:percentile(95) / 1000))
	local total = {}
	for _, t in ipairs(threads) do
		for k, v in pairs(t:get("codes")) do
			total[k] = (total[k] or 0) + v
		end
	end
	for k, v in pairs(total) do
		io.write(string.format("CODE %d %d\n", k, v))
	end
end
