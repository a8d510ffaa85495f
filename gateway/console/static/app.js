// edgegw console: applies the server's snapshot and deltas (server-sent
// events) and draws each numeric point's chart as an SVG polyline.
"use strict";
const $ = (s) => document.querySelector(s);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
const Q = { good: ["✓", "good"], stale: ["⏱", "stale"], comm_error: ["✕", "no answer"], out_of_range: ["⚠", "out of range"] };
const S = { t: 0, dev: {}, alarms: {}, hist: {}, st: null, log: {}, commands: [], me: null, can_send: false, history_s: 3600 };

function badge(cls, icon, text) { return `<span class="badge ${cls}"><span aria-hidden="true">${icon}</span> ${esc(text)}</span>`; }
function qual(q) { const x = Q[q] || ["?", q]; return badge("q-" + esc(q), x[0], x[1]); }
function clock(ms) { return ms ? new Date(ms).toLocaleTimeString([], { hour12: false }) : "—"; }
function ago(ms) { if (!ms) return "never"; const s = Math.max(0, Math.round((S.t - ms) / 1000)); return s < 90 ? s + " s ago" : s < 5400 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago"; }
function dur(s) { return s < 90 ? Math.round(s) + " s" : s < 5400 ? Math.round(s / 60) + " min" : (s / 3600).toFixed(1) + " h"; }
function bytes(n) { return n == null ? "—" : n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB"; }
function val(v) { return v === undefined ? "—" : typeof v === "number" ? +v.toPrecision(6) : typeof v === "object" ? JSON.stringify(v) : String(v); }

function apply(m, full) {
  S.t = m.t;
  if (full) { S.dev = {}; S.alarms = {}; S.hist = {}; S.log = {}; S.prefix = m.prefix; S.history_s = m.history_s; S.commands = m.commands || []; S.me = m.me || null; S.can_send = !!m.can_send; }
  for (const [d, x] of Object.entries(m.dev || {})) {
    const o = S.dev[d] || (S.dev[d] = { ts: 0, p: {} });
    o.ts = Math.max(o.ts, x.ts); Object.assign(o.p, x.p);
  }
  for (const a of m.alarms || []) S.alarms[a.d + "/" + a.p] = a;
  for (const [k, xs] of Object.entries(m.hist || {})) {
    const h = S.hist[k] || (S.hist[k] = []);
    for (const [dt, v] of xs) { const t = m.t + dt * 1000; if (!h.length || t > h[h.length - 1][0]) h.push([t, v]); }
  }
  const from = S.t - S.history_s * 1000;
  for (const h of Object.values(S.hist)) while (h.length && h[0][0] < from) h.shift();
  if (m.st) S.st = m.st;
  for (const e of m.log || []) S.log[e.d + "/" + e.c + "/" + e.id + (e.id === "auto_off" ? e.ts : "")] = e;
  render(full);
}

function chart(key, unit) {
  const h = S.hist[key] || [];
  if (h.length < 1) return "";
  const from = S.t - S.history_s * 1000, span = S.history_s * 1000;
  let lo = Infinity, hi = -Infinity;
  for (const x of h) { lo = Math.min(lo, x[1]); hi = Math.max(hi, x[1]); }
  const pad = (hi - lo) * 0.1 || 1, a = lo - pad, b = hi + pad;
  const pts = h.map((x) => ((x[0] - from) / span * 300).toFixed(1) + "," + (60 - (x[1] - a) / (b - a) * 60).toFixed(1)).join(" ");
  const first = h[0][1], last = h[h.length - 1][1], u = unit ? " " + esc(unit) : "";
  const label = `${esc(key)}: ${h.length} samples over the last ${dur(S.history_s)}, from ${+first.toPrecision(6)} to ${+last.toPrecision(6)}${u}, low ${+lo.toPrecision(6)}, high ${+hi.toPrecision(6)}`;
  return `<svg class="chart" viewBox="0 0 300 60" preserveAspectRatio="none" role="img" aria-label="${label}" data-key="${esc(key)}" data-n="${h.length}" data-first="${first}" data-last="${last}"><polyline points="${pts}"/></svg>` +
    `<div class="range"><span>−${dur(S.history_s)}</span><span>${+lo.toPrecision(4)}…${+hi.toPrecision(4)}${u}</span><span>now</span></div>`;
}

function render(full) {
  $("#prefix").textContent = S.prefix || "";
  const alarms = Object.values(S.alarms).filter((a) => a.on);
  $("#alarm-list").innerHTML = alarms.length ? alarms.map((a) => `<div class="alarm" data-alarm="${esc(a.d + "/" + a.p)}"><span aria-hidden="true">⚠</span> ${esc(a.d)}: ${esc(a.p.replace(/_/g, " "))} <span class="muted">since ${clock(a.ts)}</span></div>`).join("") : '<p class="muted">none</p>';
  const devs = (S.st && S.st.devices) || Object.keys(S.dev).map((n) => ({ name: n, state: "?" }));
  $("#devices").innerHTML = devs.map((d) => {
    const x = S.dev[d.name] || { ts: 0, p: {} };
    const rows = Object.keys(x.p).sort().map((n) => {
      const p = x.p[n], k = d.name + "." + n;
      return `<tr data-point="${esc(k)}" data-quality="${esc(p.q)}"><th scope="row">${esc(n)}</th><td class="num">${esc(val(p.v))} ${esc(p.u || "")}</td><td>${qual(p.q)}</td></tr>` +
        (S.hist[k] && S.hist[k].length ? `<tr><td colspan="3">${chart(k, p.u)}</td></tr>` : "");
    }).join("");
    const st = { online: "✓", offline: "✕", starting: "…" }[d.state] || "?";
    return `<article class="card" data-device="${esc(d.name)}" aria-labelledby="d-${esc(d.name)}"><header><h3 id="d-${esc(d.name)}">${esc(d.name)}</h3>${badge("s-" + esc(d.state), st, d.state)}</header>` +
      `<p class="muted">last reading <time datetime="${x.ts ? new Date(x.ts).toISOString() : ""}">${clock(x.ts)}</time> (${ago(x.ts)})</p>` +
      (rows ? `<table><thead><tr><th scope="col">point</th><th scope="col">value</th><th scope="col">quality</th></tr></thead><tbody>${rows}</tbody></table>` : '<p class="muted">no readings yet</p>') + "</article>";
  }).join("");
  if (S.st) {
    $("#queue tbody").innerHTML = S.st.queue.map((c) => `<tr data-class="${esc(c.name)}" data-records="${c.records}"><th scope="row">${esc(c.name)}</th><td class="num">${c.records}</td><td class="num">${bytes(c.bytes)}</td><td class="num">${c.records ? dur(c.oldest_s) : "—"}</td><td class="num">${c.dropped}</td></tr>`).join("");
    const u = S.st.uplink;
    $("#uplink").innerHTML = !u ? "<dt>state</dt><dd>not configured</dd>" :
      `<dt>state</dt><dd data-connected="${u.connected}">${u.connected ? badge("s-online", "✓", "connected") : badge("s-offline", "✕", "not connected")}</dd>` +
      `<dt>protocol</dt><dd>MQTT ${esc(u.protocol || "—")}, QoS ${u.qos || "—"}</dd><dt>acknowledged</dt><dd>${u.acked} records</dd><dt>in flight</dt><dd>${u.in_flight}</dd>` +
      `<dt>bytes today</dt><dd>${bytes(u.bytes_today)}</dd><dt>this month</dt><dd>${bytes(u.bytes_month)}</dd><dt>last error</dt><dd>${esc(u.last_error || "none")}</dd>`;
    const b = S.st.broker;
    $("#broker").innerHTML = `<dt>clients</dt><dd>${b.clients}</dd><dt>messages in</dt><dd>${b.messages_received}</dd><dt>messages out</dt><dd>${b.messages_sent}</dd>`;
  }
  const log = Object.values(S.log).sort((a, b) => b.ts - a.ts);
  $("#log tbody").innerHTML = log.map((e) => {
    const st = e.status || "pending", icon = { done: "✓", pending: "…" }[st] || "✕";
    const rule = S.commands.find((r) => r.device === e.d && r.name === e.c);
    const checks = st === "done" ? "all passed: expiry, value" + (rule && rule.require ? ", interlock " + rule.require.join(", ") : "") + ", rate limit" : esc(e.error || "");
    return `<tr data-id="${esc(e.id)}" data-status="${esc(st)}"><td>${clock(e.ts)}</td><td>${esc(e.d + "/" + e.c)}</td><td>${esc(e.src ? e.src + (e.user ? " (" + e.user + ")" : "") : "cloud / gateway")}</td><td>${e.value === undefined ? "—" : esc(JSON.stringify(e.value))}</td><td>${badge("o-" + esc(st), icon, st)}</td><td>${checks}</td></tr>`;
  }).join("");
  if (full) renderForms();
}

function renderForms() {
  $("#cmd-off").hidden = S.can_send;
  $("#login").hidden = !S.can_send || !!S.me;
  $("#send").hidden = !S.can_send || !S.me;
  if (S.me) $("#who").textContent = S.me.user;
  $("#cmd-select").innerHTML = S.commands.map((r, i) => `<option value="${i}">${esc(r.device + "/" + r.name)} (${esc(r.type)}${r.min != null ? " " + r.min + "…" + r.max : ""}${r.values ? ": " + esc(r.values.join("|")) : ""})</option>`).join("");
}

async function post(path, body) {
  const h = { "Content-Type": "application/json" };
  if (S.me) h["X-CSRF-Token"] = S.me.csrf;
  const r = await fetch(path, { method: "POST", headers: h, body: JSON.stringify(body), credentials: "same-origin" });
  let j = {};
  try { j = await r.json(); } catch (e) { }
  return [r.status, j];
}

$("#login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target, [code, j] = await post("api/login", { user: f.user.value, password: f.password.value });
  f.password.value = "";
  if (code !== 200) { $("#login-msg").textContent = j.error || "login failed"; return; }
  S.me = j; $("#login-msg").textContent = ""; renderForms();
});
$("#logout").addEventListener("click", async () => { await post("api/logout", {}); S.me = null; renderForms(); });
$("#send").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = S.commands[+$("#cmd-select").value], raw = $("#cmd-value").value.trim();
  let v = raw;
  if (r.type === "bool") v = raw === "true" || raw === "on" || raw === "1";
  else if (r.type === "number") v = Number(raw);
  $("#send-msg").textContent = "sending…";
  const [code, j] = await post("api/command", { device: r.device, command: r.name, value: v });
  if (code === 401) { S.me = null; renderForms(); }
  $("#send-msg").textContent = code === 200 ? `${j.status}${j.error ? ": " + j.error : ""} (${j.id})` : (j.error || "error " + code);
  $("#send-msg").dataset.status = code === 200 ? j.status : "error";
});

function connect() {
  const es = new EventSource("events");
  es.addEventListener("snapshot", (e) => { $("#conn").textContent = "live"; apply(JSON.parse(e.data), true); });
  es.addEventListener("delta", (e) => apply(JSON.parse(e.data), false));
  es.onerror = () => { $("#conn").textContent = "reconnecting…"; };
}
connect();
