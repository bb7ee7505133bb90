#!/usr/bin/python3
"""bench/fill_figures.py README OUTPUT... — fill bench/README.md's "Latest figures"
table from the RATIO lines of bench outputs (objects.sh, admin.sh, oap.sh),
with the targets of issue 13. Rows whose figure is absent are left as they are."""
import re
import sys

readme, files = sys.argv[1], sys.argv[2:]
vals = {}
for f in files:
    for line in open(f):
        if line.startswith("RATIO "):
            _, fig, met, a, b, r = line.split()
            vals[(fig, met)] = (a, b, r)
targets = {
 ("get-64KiB-plain","req_s"): "≥ 0.8", ("get-1MiB-plain","req_s"): "≥ 0.8",
 ("get-64KiB-tls","req_s"): "≥ 0.9", ("get-1MiB-tls","req_s"): "≥ 1.0",
 ("get-64KiB-plain","p99_ms"): "≤ 1.5", ("get-1MiB-plain","p99_ms"): "≤ 1.5",
 ("get-64KiB-tls","p99_ms"): "≤ 1.5", ("get-1MiB-tls","p99_ms"): "≤ 1.5",
 ("ttfb-range-plain","ttfb_ms"): "≤ 1.2 and < 1 ms", ("ttfb-range-tls","ttfb_ms"): "≤ 1.1",
 ("gateway-https-256MiB","mb_s"): "≥ 0.9", ("oap-256MiB","mb_s"): "≥ 1.0",
 ("admin-healthz","req_s"): "≥ 1.0",
}
out = []
for line in open(readme):
    m = re.match(r"\| (.*) \(`(\S+) (\S+)`\) \| .*\|\s*$", line)
    if m and (m.group(2), m.group(3)) in vals:
        a, b, r = vals[(m.group(2), m.group(3))]
        t = targets.get((m.group(2), m.group(3)), "—")
        line = "| %s (`%s %s`) | %s | %s | %s | %s |\n" % (m.group(1), m.group(2), m.group(3), a, b, r, t)
    out.append(line)
open(readme, "w").write("".join(out))
