/*
 * macronode console (docs/console.md). Plain JavaScript, no library: it
 * reads the admin plane (/readyz, /api/v1/status, /metrics, /ui/config.json,
 * and /api/v1/audit/recent when the node runs the audit service) every
 * POLL_MS and draws the gateway's counters on canvases; it looks up and
 * uploads objects on the gateway (another origin: the gateway must list
 * this page's origin in gateway.cors_origins for uploads).
 *
 * Tokens (the admin token, a capability token) live in variables of this
 * closure only: never localStorage, sessionStorage, a cookie or the URL.
 */
"use strict";
(function () {
  const POLL_MS = 2000;
  const HISTORY = 90;                 // points per plot (3 minutes at 2 s)
  const COLORS = ["#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989",
                  "#116329", "#953800"];
  const $ = (id) => document.getElementById(id);

  let adminToken = null;              // page memory only
  let cfg = null;                     // /ui/config.json
  let prev = null;                    // last sample {t, req, latSum, latCount, bytes, rej{}}
  let auditOn = false;                // the node runs the audit service (/readyz)
  const AUDIT_ROWS = 10;              // newest audit records shown
  const hist = { rate: [], lat: [], bytes: [], rej: {} };

  // ---- formatting -------------------------------------------------------
  function fmtBytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(Math.round(n))) + " " + u[i];
  }
  function fmtDur(ms) {
    const s = Math.floor(ms / 1000);
    if (s < 120) return s + " s";
    if (s < 7200) return Math.floor(s / 60) + " min";
    return Math.floor(s / 3600) + " h";
  }
  function text(el, s) { el.textContent = s; return el; }
  function td(row, s, cls) {
    const c = row.insertCell();
    text(c, s);
    if (cls) { c.className = cls; }
    return c;
  }
  function badge(el, state) { text(el, state); el.className = "badge " + state; }
  function showError(msg) { const e = $("error"); e.hidden = !msg; text(e, msg || ""); }

  // ---- /metrics ------------------------------------------------------------
  // Prometheus text: `name{a="b",c="d"} value`; returns [{name, labels, value}].
  const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/;
  const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  function parseMetrics(body) {
    const out = [];
    for (const line of body.split("\n")) {
      if (!line || line[0] === "#") continue;
      const m = SAMPLE.exec(line);
      if (!m) continue;
      const labels = {};
      if (m[3]) for (const l of m[3].matchAll(LABEL)) labels[l[1]] = l[2];
      out.push({ name: m[1], labels: labels, value: Number(m[4]) });
    }
    return out;
  }
  function sum(samples, name, match) {
    let s = 0;
    for (const x of samples) {
      if (x.name !== name) continue;
      let ok = true;
      for (const k in match) if (x.labels[k] !== match[k]) { ok = false; break; }
      if (ok) s += x.value;
    }
    return s;
  }
  function sample(samples) {
    const gw = { service: "gateway" };
    const rej = {};
    for (const x of samples)
      if (x.name === "rejected_total") rej[x.labels.reason] = (rej[x.labels.reason] || 0) + x.value;
    return {
      t: performance.now(),
      req: sum(samples, "http_requests_total", gw),
      latSum: sum(samples, "request_latency_seconds_sum", gw),
      latCount: sum(samples, "request_latency_seconds_count", gw),
      bytes: sum(samples, "http_bytes_out_total", gw),
      quotaEvictions: sum(samples, "quota_evictions_total", {}),
      rej: rej,
    };
  }

  // ---- plots ---------------------------------------------------------------
  function push(arr, v) { arr.push(v); if (arr.length > HISTORY) arr.shift(); }
  function draw(canvas, series, fmt) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, pad = 4;
    let max = 0;
    for (const s of series) for (const v of s.data) max = Math.max(max, v);
    max = max > 0 ? max * 1.15 : 1;
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = "#d0d7de";
    ctx.beginPath(); ctx.moveTo(0, h - pad); ctx.lineTo(w, h - pad); ctx.stroke();
    ctx.fillStyle = "#667";
    ctx.font = "11px sans-serif";
    ctx.fillText(fmt(max), 4, 12);
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      s.data.forEach((v, i) => {
        const x = w - (s.data.length - 1 - i) * (w / (HISTORY - 1));
        const y = h - pad - (v / max) * (h - 2 * pad - 12);
        if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      });
      ctx.stroke();
    }
  }
  function plot(cur) {
    text($("req-total"), String(cur.req));
    text($("bytes-total"), fmtBytes(cur.bytes));
    if (prev) {
      const dt = Math.max((cur.t - prev.t) / 1000, 0.001);
      const rate = Math.max(cur.req - prev.req, 0) / dt;
      const n = cur.latCount - prev.latCount;
      const lat = n > 0 ? (cur.latSum - prev.latSum) / n : 0;
      const bps = Math.max(cur.bytes - prev.bytes, 0) / dt;
      push(hist.rate, rate);
      push(hist.lat, lat * 1000);
      push(hist.bytes, bps);
      text($("rate-now"), rate.toFixed(1));
      text($("lat-now"), n > 0 ? (lat * 1000).toFixed(2) + " ms" : "–");
      text($("bytes-now"), fmtBytes(bps));
      let total = 0;
      for (const r of new Set(Object.keys(cur.rej).concat(Object.keys(hist.rej)))) {
        if (!hist.rej[r]) hist.rej[r] = [];
        const v = Math.max((cur.rej[r] || 0) - ((prev.rej && prev.rej[r]) || 0), 0) / dt;
        push(hist.rej[r], v);
        total += v;
      }
      text($("rej-now"), total.toFixed(1));
    }
    draw($("plot-rate"), [{ data: hist.rate, color: COLORS[0] }], (v) => v.toFixed(1) + "/s");
    draw($("plot-lat"), [{ data: hist.lat, color: COLORS[4] }], (v) => v.toFixed(1) + " ms");
    draw($("plot-bytes"), [{ data: hist.bytes, color: COLORS[2] }], (v) => fmtBytes(v) + "/s");
    const reasons = Object.keys(hist.rej).sort();
    draw($("plot-rej"), reasons.map((r, i) => ({ data: hist.rej[r], color: COLORS[i % COLORS.length] })),
         (v) => v.toFixed(1) + "/s");
    const legend = $("rej-legend");
    legend.replaceChildren();
    reasons.forEach((r, i) => {
      const li = document.createElement("li");
      const sw = document.createElement("i");
      sw.style.background = COLORS[i % COLORS.length];
      li.append(sw, r + " " + (cur.rej[r] || 0));
      legend.append(li);
    });
    prev = cur;
  }

  // ---- readiness, services, quotas ----------------------------------------
  function showReady(r) {
    badge($("ready-status"), r.status);
    badge($("node-state"), r.status);
    const ul = $("ready-reasons");
    ul.replaceChildren();
    for (const reason of r.reasons || []) {
      const li = document.createElement("li");
      ul.append(text(li, reason));
    }
    const svcs = (r.deps && r.deps.services) || {};
    text($("ready-summary"), Object.keys(svcs).map((k) =>
      k + " " + svcs[k].ready_workers + "/" + svcs[k].workers).join(", "));
    const dht = r.deps && r.deps.dht;
    $("dht-box").hidden = !dht;         // only when the node runs the dht service
    if (dht) {
      badge($("dht-state"), dht.state);
      text($("dht-peers"), String(dht.routing_nodes));
    }
    // only when the node runs the audit service (a row in deps.services)
    auditOn = Object.prototype.hasOwnProperty.call(svcs, "audit");
    $("audit-box").hidden = !auditOn;
  }
  // ---- audit (GET /api/v1/audit/recent: the newest records and checkpoint) --
  function fmtTime(ms) {
    return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
  }
  function short(id) { return String(id || "").slice(0, 19) + "…"; }
  function showAudit(j) {
    const c = j.checkpoint;
    text($("audit-size"), c ? String(c.size) : "–");
    text($("audit-time"), c ? fmtTime(c.time_ms) : "no checkpoint yet");
    text($("audit-root"), c ? short(c.root) : "");
    text($("audit-node"), c ? short(c.node_id) : "");
    const note = $("audit-note");
    note.hidden = !j.omitted;
    text(note, j.omitted ? j.omitted + " newer record(s) too large to show here" : "");
    const tb = $("audit-records").tBodies[0];
    tb.replaceChildren();
    for (const x of j.records) {
      let rec;
      try { rec = JSON.parse(x.record); } catch (e) { continue; }
      const row = tb.insertRow();
      row.dataset.index = String(x.index);
      td(row, fmtTime(rec.ts_ms), "mono");
      td(row, rec.stream);
      td(row, String(rec.seq));
      td(row, rec.kind);
      td(row, rec.reason);
    }
  }
  async function pollAudit() {
    if (!auditOn) return;
    const r = await fetch("/api/v1/audit/recent?n=" + AUDIT_ROWS, { cache: "no-store" });
    const j = await r.json().catch(() => ({}));
    if (r.ok) { showAudit(j); return; }
    const note = $("audit-note");
    note.hidden = false;
    text(note, "audit: " + r.status + " " + (j.message || ""));
  }
  function showStatus(s) {
    text($("node-version"), s.version);
    text($("node-id"), s.node_id || "");
    const tb = $("services").tBodies[0];
    tb.replaceChildren();
    for (const c of s.children) {
      const row = tb.insertRow();
      row.dataset.service = c.service;
      td(row, c.service);
      td(row, String(c.worker));
      td(row, String(c.pid));
      badge(td(row, ""), c.crashloop ? "crashloop" : c.state);
      td(row, String(c.restarts));
      td(row, c.pid > 0 ? fmtDur(c.uptime_ms) : "–");
      td(row, c.storage_reachable ? "reachable" : "unreachable");
    }
    text($("reloads"), s.reloads.ok + " ok, " + s.reloads.refused + " refused" +
         (s.reloads.last_error ? " (last: " + s.reloads.last_error + ")" : ""));
  }
  function showQuotas(cur) {
    const tb = $("quotas").tBodies[0];
    tb.replaceChildren();
    const q = cfg.quota, l = cfg.limits;
    const rows = [
      ["per-tenant requests/s (burst)", q.requests_per_second ? q.requests_per_second + " (" + q.burst + ")" : "no cap"],
      ["per-tenant body bytes/s (burst)", q.bytes_per_second ? fmtBytes(q.bytes_per_second) + " (" + fmtBytes(q.bytes_burst) + ")" : "no cap"],
      ["tenants kept", String(q.max_tenants)],
      ["refused for quota", String((cur && cur.rej.quota) || 0)],
      ["tenants forgotten (evictions)", String(cur ? cur.quotaEvictions : 0)],
      ["node requests/s", l.requests_per_second ? String(l.requests_per_second) : "no cap"],
      ["in flight per worker", String(l.max_inflight)],
      ["largest object", fmtBytes(l.max_object)],
    ];
    for (const [k, v] of rows) { const r = tb.insertRow(); td(r, k, "muted"); td(r, v); }
  }

  async function getJSON(path) {
    const r = await fetch(path, { cache: "no-store" });
    return r.json();
  }
  async function poll() {
    try {
      const [ready, status, metrics] = await Promise.all([
        getJSON("/readyz"), getJSON("/api/v1/status"),
        fetch("/metrics", { cache: "no-store" }).then((r) => r.text())]);
      showReady(ready);
      showStatus(status);
      await pollAudit();
      const cur = sample(parseMetrics(metrics));
      plot(cur);
      showQuotas(cur);
      showError("");
    } catch (e) {
      showError("admin plane unreachable: " + e);
    }
  }

  // ---- admin actions (need the admin token) --------------------------------
  function adminButtons() {
    const on = adminToken !== null;
    $("btn-reload").disabled = !on;
    $("btn-shutdown").disabled = !on;
  }
  async function adminPost(path) {
    const r = await fetch(path, { method: "POST", cache: "no-store",
                                  headers: { Authorization: "Bearer " + adminToken } });
    const j = await r.json().catch(() => ({}));
    showError(r.ok ? "" : path + ": " + r.status + " " + (j.message || ""));
  }

  // ---- objects on the gateway ----------------------------------------------
  const CID = /^b3:[0-9a-f]{64}$/;
  function gw(path) { return cfg.gateway_origin + path; }
  // Who holds it, by the DHT (admin plane, same origin; read-only).
  async function showProviders(cid) {
    const out = $("obj-prov");
    text(out, "asking the DHT…");
    try {
      const r = await fetch("/api/v1/providers/" + cid, { cache: "no-store" });
      const j = await r.json().catch(() => ({}));
      if (!r.ok) { text(out, (j.message || ("HTTP " + r.status))); return; }
      if (j.dht === "disabled") { text(out, "the dht service is not enabled on this node"); return; }
      const list = (j.providers || []).map((p) => p.node_id.slice(0, 19) + "… " + p.addr);
      text(out, list.length ? list.join(", ") : "none found");
    } catch (e) {
      text(out, "admin plane unreachable: " + e);
    }
  }
  async function lookup(ev) {
    ev.preventDefault();
    const cid = $("cid").value.trim();
    $("object-info").hidden = true;
    const err = $("obj-error");
    err.hidden = true;
    if (!CID.test(cid)) { err.hidden = false; text(err, "not a cid: want b3:<64 lowercase hex>"); return; }
    showProviders(cid);
    try {
      const r = await fetch(gw("/o/" + cid), { method: "HEAD", cache: "no-store" });
      if (!r.ok) { err.hidden = false; text(err, "HEAD " + cid + ": " + r.status); return; }
      const len = Number(r.headers.get("Content-Length"));
      text($("obj-size"), fmtBytes(len) + " (" + len + " bytes)");
      text($("obj-type"), r.headers.get("Content-Type") || "");
      text($("obj-etag"), r.headers.get("ETag") || "");
      $("obj-link").href = gw("/o/" + cid);
      $("obj-link").download = cid.slice(3, 19);
      $("object-info").hidden = false;
    } catch (e) {
      err.hidden = false;
      text(err, "gateway unreachable: " + e);
    }
  }
  function upload(file) {
    const tok = $("cap-token").value;           // read at use, not kept elsewhere
    const bar = $("up-progress"), st = $("up-status");
    const xhr = new XMLHttpRequest();
    bar.hidden = false;
    bar.value = 0;
    text($("up-cid"), "");
    text(st, "uploading " + file.name + " (" + fmtBytes(file.size) + ")…");
    xhr.open("POST", gw("/o"));
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    if (tok) xhr.setRequestHeader("Authorization", "Bearer " + tok);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = 100 * e.loaded / e.total; };
    xhr.onload = () => {
      let j = {};
      try { j = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 200 || xhr.status === 201) {
        bar.value = 100;
        text($("up-cid"), j.cid);
        text(st, (xhr.status === 201 ? "stored " : "already held ") + fmtBytes(file.size));
        $("cid").value = j.cid;
      } else {
        text(st, "refused: " + xhr.status + " " + (j.code || "") + " " + (j.message || ""));
      }
    };
    xhr.onerror = () => text(st, "upload failed: the gateway did not answer, or refused this " +
                              "origin (gateway.cors_origins must list " + location.origin + ")");
    xhr.send(file);
  }

  async function start() {
    text($("poll-s"), String(POLL_MS / 1000));
    try {
      cfg = await getJSON("/ui/config.json");
    } catch (e) {
      showError("cannot read /ui/config.json: " + e);
      return;
    }
    text($("gw-origin"), cfg.gateway_origin);
    if (!cfg.cors_origins.includes(location.origin)) {
      const n = $("cors-note");
      n.hidden = false;
      text(n, "Uploads from this page need gateway.cors_origins to list " + location.origin +
           " (docs/console.md); lookups work without it.");
    }
    if (!cfg.admin_token_required) {
      text($("admin-note"), "no admin token configured: reload and shutdown are not offered here");
      for (const id of ["admin-token", "admin-use", "btn-reload", "btn-shutdown"]) $(id).hidden = true;
    }
    $("admin-use").addEventListener("click", () => {
      const v = $("admin-token").value;
      adminToken = v ? v : null;
      $("admin-token").value = "";
      adminButtons();
    });
    $("btn-reload").addEventListener("click", () => adminPost("/api/v1/reload"));
    $("btn-shutdown").addEventListener("click", () => {
      if (confirm("Shut the node down?")) adminPost("/api/v1/shutdown");
    });
    $("lookup").addEventListener("submit", lookup);
    $("file").addEventListener("change", (e) => { if (e.target.files[0]) upload(e.target.files[0]); });
    const drop = $("drop");
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
    });
    adminButtons();
    showQuotas(null);
    await poll();
    setInterval(poll, POLL_MS);
  }
  document.addEventListener("DOMContentLoaded", start);
})();
