-- bench/facets_graph.lua — wrk script of the Graph drill (bench/facets.sh):
-- GET follower pages, each request a page picked at random from the paths
-- file (PATHS env: one path with its cursor per line, made by
-- facets_social.py paths); prints the percentiles wrk's own summary lacks.
local paths = {}

init = function(args)
	for line in io.lines(os.getenv("PATHS")) do
		if #line > 0 then paths[#paths + 1] = line end
	end
	math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

request = function()
	return wrk.format("GET", paths[math.random(#paths)])
end

done = function(summary, latency, requests)
	io.write(string.format("LAT %.3f %.3f %.3f %d %d\n",
		latency:percentile(50) / 1000, latency:percentile(95) / 1000,
		latency:percentile(99) / 1000, summary.requests,
		summary.errors.status + summary.errors.connect + summary.errors.read +
		summary.errors.write + summary.errors.timeout))
end
