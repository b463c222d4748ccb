// The dashboard page: polls /api/state twice a second (only points newer
// than the last it has), keeps the last hour, and draws region cards and
// line charts on canvases. No library, nothing loaded from elsewhere.
"use strict";

const HOUR = 3600;
const COLORS = ["#2f81f7", "#d29922", "#a371f7", "#3fb950", "#f778ba", "#79c0ff", "#ffa657", "#56d364", "#ff7b72"];
let since = 0;
let names = [];
const points = []; // [time, [[rps, hit, p99, up, bytes, 5xx, lag, fetch p99], ...]]

function fmt(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return v.toFixed(digits);
}

function bytes(v) {
  if (!v) return "0 B/s";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return v.toFixed(1) + " " + units[i] + "/s";
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function card(name, p) {
  const up = p.edge_up && p.origin_up;
  const c = el("div", { class: "region", "data-region": name, "data-state": up ? "up" : "down" });
  const h = el("h3", {}, name);
  h.appendChild(el("span", { class: "state" }, up ? "UP" : "DOWN"));
  c.appendChild(h);
  const dl = el("dl");
  const rows = [
    ["origin", p.origin_up ? `${p.role}, term ${p.term}` : "unreachable", "origin"],
    ["applied index", p.origin_up ? String(p.applied_index) : "–", "applied_index"],
    ["replication lag", p.origin_up ? `${p.lag} entries` : "–", "lag"],
    ["edge", p.edge_up ? "healthy" : "unreachable", "edge"],
    ["requests", fmt(p.requests_per_s, 1) + " /s", "requests_per_s"],
    ["hit ratio", p.hit_ratio === null ? "–" : (p.hit_ratio * 100).toFixed(1) + " %", "hit_ratio"],
    ["bytes out", bytes(p.bytes_out_per_s), "bytes_out"],
    ["p50 / p99", `${fmt(p.p50_ms, 1)} / ${fmt(p.p99_ms, 1)} ms`, "latency"],
    ["4xx / 5xx", `${fmt(p.client_errors_per_s, 1)} / ${fmt(p.server_errors_per_s, 1)} /s`, "errors"],
    ["origin fetch p99", fmt(p.origin_fetch_p99_ms, 1) + " ms", "origin_fetch"],
    ["GeoDNS answers", fmt(p.dns_answers_per_s, 1) + " /s", "dns_answers"],
  ];
  for (const [k, v, field] of rows) {
    dl.appendChild(el("dt", {}, k));
    dl.appendChild(el("dd", { "data-field": field }, v));
  }
  c.appendChild(dl);
  return c;
}

function fillTable(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows.map(cells => {
    const tr = el("tr");
    for (const c of cells) tr.appendChild(el("td", {}, c));
    return tr;
  }));
}

function draw(id, index, scale) {
  const canvas = document.getElementById(id);
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * devicePixelRatio; canvas.height = h * devicePixelRatio;
  const g = canvas.getContext("2d");
  g.scale(devicePixelRatio, devicePixelRatio);
  g.clearRect(0, 0, w, h);
  const now = points.length ? points[points.length - 1][0] : 0;
  let max = scale || 0;
  if (!scale) for (const [, rs] of points) for (const r of rs) if (r[index] !== null) max = Math.max(max, r[index]);
  max = max || 1;
  g.strokeStyle = "#22303c"; g.fillStyle = "#8b98a5"; g.font = "11px system-ui";
  for (let i = 0; i <= 4; i++) {
    const y = 4 + (h - 20) * i / 4;
    g.beginPath(); g.moveTo(30, y); g.lineTo(w, y); g.stroke();
    g.fillText((max * (1 - i / 4)).toPrecision(2), 0, y + 4);
  }
  // The last hour, or less while the history is shorter (at least a minute).
  const span = points.length ? Math.max(60, Math.min(HOUR, now - points[0][0])) : HOUR;
  const label = span >= 120 ? `-${Math.round(span / 60)} min` : `-${Math.round(span)} s`;
  g.fillText(label, 30, h - 3); g.fillText("now", w - 24, h - 3);
  names.forEach((_, r) => {
    g.strokeStyle = COLORS[r % COLORS.length]; g.lineWidth = 1.5; g.beginPath();
    let pen = false;
    for (const [t, rs] of points) {
      const v = rs[r] ? rs[r][index] : null;
      if (v === null || v === undefined) { pen = false; continue; }
      const x = 30 + (w - 30) * (1 - (now - t) / span);
      const y = 4 + (h - 20) * (1 - v / max);
      if (pen) g.lineTo(x, y); else g.moveTo(x, y);
      pen = true;
    }
    g.stroke();
  });
}

function render(state) {
  names = state.regions;
  const latest = state.latest || [];
  document.getElementById("regions").replaceChildren(...names.map((n, i) => card(n, latest[i] || {})));
  document.getElementById("legend").replaceChildren(...names.map((n, i) => {
    const s = el("span", {}, "■ " + n); s.style.color = COLORS[i % COLORS.length]; return s;
  }));
  const plugins = [], queues = new Map();
  latest.forEach((p, i) => {
    for (const pl of p.plugins || []) plugins.push([names[i], pl.plugin, pl.version, fmt(pl.requests_per_s, 1), fmt(pl.errors_per_s, 1), fmt(pl.timeouts_per_s, 1), fmt(pl.p99_ms, 1)]);
    for (const q of p.queues || []) queues.set(q.queue, [q.queue, fmt(q.ready, 0), fmt(q.in_flight, 0), fmt(q.dead, 0), fmt(q.oldest_age_s, 0)]);
  });
  fillTable("plugins", plugins);
  fillTable("queues", [...queues.values()]);
  const answers = new Map(names.map((n, i) => [n, latest[i] ? fmt(latest[i].dns_answers_per_s, 1) : "–"]));
  fillTable("dns", state.dns.up
    ? state.dns.endpoints.map(([region, endpoint, up]) => [region, endpoint, up ? "healthy" : "DOWN", answers.get(region) || "–"])
    : [["geodns", "", "unreachable", ""]]);
  draw("chart-rps", 0);
  draw("chart-hit", 1, 1);
  draw("chart-p99", 2);
  draw("chart-bytes", 4);
  draw("chart-5xx", 5);
  draw("chart-fetch", 7);
  draw("chart-lag", 6);
}

async function poll() {
  try {
    const resp = await fetch(`/api/state?since=${since}`, { cache: "no-store" });
    if (resp.status === 401) { location.href = "/login"; return; }
    const state = await resp.json();
    for (const p of state.series) points.push(p);
    since = state.now;
    while (points.length && points[0][0] < since - HOUR) points.shift();
    render(state);
    document.getElementById("status").textContent = "live, " + new Date(since * 1000).toLocaleTimeString();
  } catch (e) {
    document.getElementById("status").textContent = "dashboard unreachable: " + e;
  }
}

poll();
setInterval(poll, 500);
