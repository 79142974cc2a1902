// Daily statistics as charts (per group, per stream) and tables, the billing CSV, and the
// schedules of issue 13 when this manager serves them.

import {api, authUrl, bps, bytes, esc} from "/static/api.js";
import {listen, showError, state} from "/static/store.js";

const COLORS = ["#3b7dd8", "#e0a21b", "#2f9e5b", "#c2452d", "#7a5cc2", "#1aa3a3", "#b5651d", "#d6508f", "#6b7a8f"];

export const METRICS = {
  uptime_s: {label: "uptime (stream-hours)", scale: (v) => v / 3600, additive: true,
             fmt: (v) => v === 0 ? "0" : v < 1 ? `${Math.round(v * 60)} min` : `${v.toFixed(1)} h`},
  bytes_in: {label: "media read", scale: (v) => v, fmt: bytes, additive: true},
  avg_bitrate_bps: {label: "average bitrate (bytes over media time)", scale: (v) => v, fmt: bps, additive: false},
  frames_decoded: {label: "frames decoded", scale: (v) => v, fmt: (v) => Math.round(v).toLocaleString(), additive: true},
  reconnects: {label: "reconnects", scale: (v) => v, fmt: (v) => Math.round(v).toLocaleString(), additive: true},
  stalls: {label: "stalls", scale: (v) => v, fmt: (v) => Math.round(v).toLocaleString(), additive: true},
};

export function days(n) {
  const out = [];
  const today = new Date();
  for (let i = n - 1; i >= 0; i--) {
    const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
    out.push(d.toISOString().slice(0, 10));
  }
  return out;
}

const keyOf = (item, by) => by === "group" ? (item.group ?? "(no group)") : by === "stream" ? item.stream_id : by === "agent" ? item.agent_id : "total";

// An SVG bar chart: one bar (stacked series) or a group of bars per day.
export function barChart(dates, series, metric) {
  const m = METRICS[metric];
  const W = 800, H = 220, L = 64, B = 28, T = 10;
  const values = series.map((s) => s.values.map((v) => m.scale(v)));
  const perDay = dates.map((_, i) => m.additive ? values.reduce((sum, v) => sum + v[i], 0) : Math.max(0, ...values.map((v) => v[i])));
  const max = Math.max(...perDay, 0) || 1;
  const slot = (W - L) / dates.length, bar = slot * 0.7;
  const y = (v) => T + (H - B - T) * (1 - v / max);
  let svg = `<svg class="chart" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="${esc(m.label)}">`;
  for (const f of [0, 0.5, 1]) {
    svg += `<line x1="${L}" x2="${W}" y1="${y(max * f)}" y2="${y(max * f)}" stroke="#e5e8ee"/>` +
      `<text x="${L - 6}" y="${y(max * f) + 4}" text-anchor="end">${esc(m.fmt(max * f))}</text>`;
  }
  dates.forEach((d, i) => {
    const x0 = L + i * slot + (slot - bar) / 2;
    if (m.additive) {
      let base = 0;
      values.forEach((v, k) => {
        if (!v[i]) return;
        svg += `<rect x="${x0}" width="${bar}" y="${y(base + v[i])}" height="${y(base) - y(base + v[i])}" fill="${COLORS[k % COLORS.length]}"><title>${esc(series[k].name)} ${d}: ${esc(m.fmt(v[i]))}</title></rect>`;
        base += v[i];
      });
    } else {
      const w = bar / Math.max(values.length, 1);
      values.forEach((v, k) => {
        if (!v[i]) return;
        svg += `<rect x="${x0 + k * w}" width="${w}" y="${y(v[i])}" height="${y(0) - y(v[i])}" fill="${COLORS[k % COLORS.length]}"><title>${esc(series[k].name)} ${d}: ${esc(m.fmt(v[i]))}</title></rect>`;
      });
    }
    if (dates.length <= 16 || i % 2 === 0) svg += `<text x="${L + i * slot + slot / 2}" y="${H - 10}" text-anchor="middle">${d.slice(5)}</text>`;
  });
  svg += `</svg><div class="legend">${series.map((s, k) => `<span><i style="background:${COLORS[k % COLORS.length]}"></i>${esc(s.name)}</span>`).join("")}</div>`;
  return svg;
}

// Per-day lines of a range query, as series by key (the 8 largest keys, the rest summed).
async function rangeSeries(dates, filters, by) {
  const q = new URLSearchParams({from: dates[0], to: dates[dates.length - 1], per: "day", by, limit: 10000});
  for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
  const {result} = await api(`/api/v1/stats/range?${q}`);
  const byKey = new Map();
  for (const item of result.items) {
    const key = keyOf(item, by);
    if (!byKey.has(key)) byKey.set(key, new Map());
    byKey.get(key).set(item.date, item);
  }
  return {result, byKey};
}

function seriesOf(dates, byKey, metric) {
  const all = [...byKey.entries()].map(([name, perDay]) => ({name, values: dates.map((d) => perDay.get(d)?.[metric] || 0)}));
  all.sort((a, b) => b.values.reduce((x, y) => x + y, 0) - a.values.reduce((x, y) => x + y, 0));
  if (all.length <= 8 || !METRICS[metric].additive) return all.slice(0, 8);
  const rest = all.slice(7);
  return [...all.slice(0, 7), {name: `${rest.length} others`, values: dates.map((_, i) => rest.reduce((s, r) => s + r.values[i], 0))}];
}

// A chart of the last 14 days with a metric picker (the stream detail uses it).
export async function dailyChart(el, filters, by, n = 14) {
  const dates = days(n);
  el.innerHTML = `<div class="toolbar"><select data-testid="metric">${Object.entries(METRICS).map(([k, m]) =>
    `<option value="${k}">${esc(m.label)}</option>`).join("")}</select></div><div class="chart-box"></div>`;
  try {
    const {byKey} = await rangeSeries(dates, filters, by);
    const draw = () => {
      const metric = el.querySelector("select").value;
      el.querySelector(".chart-box").innerHTML = byKey.size ? barChart(dates, seriesOf(dates, byKey, metric), metric)
        : `<p class="empty">No statistics in these days.</p>`;
    };
    el.querySelector("select").onchange = draw;
    draw();
  } catch (err) { el.querySelector(".chart-box").innerHTML = `<p class="empty">${esc(err.message)}</p>`; }
}

export function mountStats(el, params) {
  const n = Number(params.days || 14);
  const by = params.by || "group";
  const dates = days(n);
  el.innerHTML = `<div class="toolbar"><h2 style="margin:0">Daily statistics</h2><span class="grow"></span>
      <select id="s-by">${["group", "stream", "agent"].map((b) => `<option ${b === by ? "selected" : ""}>${b}</option>`).join("")}</select>
      <select id="s-days">${[7, 14, 31, 92].map((d) => `<option value="${d}" ${d === n ? "selected" : ""}>last ${d} days</option>`).join("")}</select>
      <select id="s-metric">${Object.entries(METRICS).map(([k, m]) => `<option value="${k}">${esc(m.label)}</option>`).join("")}</select>
      <a id="s-csv" href="#">CSV for billing</a></div>
    <div class="panel"><div id="s-chart" data-testid="stats-chart"><p class="empty">Loading…</p></div></div>
    <div class="panel"><h3>Totals per ${esc(by)} over the range</h3><div class="scroll" id="s-table"></div>
      <p class="muted">Average bitrate is the bytes read over the <em>media</em> time decoded (a file
      decoded faster than real time still shows its own bitrate); uptime is the wall-clock time the
      stream was decoded. Lines are <code>open</code> until their days close (docs/statistics.md).</p></div>`;
  const $ = (s) => el.querySelector(s);
  const go = () => { location.hash = `#/stats?by=${$("#s-by").value}&days=${$("#s-days").value}`; };
  $("#s-by").onchange = go; $("#s-days").onchange = go;
  const csv = new URLSearchParams({from: dates[0], to: dates[dates.length - 1], per: "range", by, format: "csv"});
  $("#s-csv").href = authUrl(`/api/v1/stats/range?${csv}`);
  let byKey = new Map();
  const draw = () => {
    const metric = $("#s-metric").value;
    $("#s-chart").innerHTML = byKey.size ? barChart(dates, seriesOf(dates, byKey, metric), metric)
      : `<p class="empty">No statistics in these days.</p>`;
  };
  $("#s-metric").onchange = draw;
  (async () => {
    try {
      ({byKey} = await rangeSeries(dates, {}, by));
      draw();
      const q = new URLSearchParams({from: dates[0], to: dates[dates.length - 1], per: "range", by, limit: 1000});
      const {result} = await api(`/api/v1/stats/range?${q}`);
      $("#s-table").innerHTML = `<table><thead><tr><th>${esc(by)}</th><th class="num">uptime</th><th class="num">media read</th>
        <th class="num">avg bitrate</th><th class="num">peak bitrate</th><th class="num">frames</th><th class="num">dropped</th>
        <th class="num">reconnects</th><th class="num">stalls</th><th class="num">events</th><th>state</th></tr></thead><tbody>${
        result.items.map((i) => `<tr><td>${by === "stream" ? `<a href="#/streams/${esc(i.stream_id)}">${esc(i.stream_id)}</a>` : esc(keyOf(i, by))}</td>
          <td class="num">${(i.uptime_s / 3600).toFixed(2)} h</td><td class="num">${bytes(i.bytes_in)}</td>
          <td class="num">${bps(i.avg_bitrate_bps)}</td><td class="num">${bps(i.peak_bitrate_bps)}</td>
          <td class="num">${i.frames_decoded.toLocaleString()}</td><td class="num">${i.frames_dropped.toLocaleString()}</td>
          <td class="num">${i.reconnects}</td><td class="num">${i.stalls}</td><td class="num">${i.events}</td>
          <td>${esc(i.state)}</td></tr>`).join("") || `<tr><td colspan="11" class="empty">No line.</td></tr>`}</tbody></table>`;
    } catch (err) { showError(err); }
  })();
}

// ---- schedules (issue 13): shown when the manager serves /api/v1/schedules ---------------------

function cell(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "object") return `<code>${esc(JSON.stringify(v))}</code>`;
  if (typeof v === "number" && v > 1e12) return esc(new Date(v).toLocaleString());   // UTC ms (Red5)
  return esc(v);
}

export function mountSchedules(el) {
  el.innerHTML = `<h2>Schedules</h2><div class="scroll" id="sched"><p class="empty">Loading…</p></div>`;
  if (!state.hasSchedules) {
    el.querySelector("#sched").innerHTML = `<p class="empty">This manager serves no schedules.</p>`;
    return null;
  }
  const load = async () => {
    try {
      const {result} = await api("/api/v1/schedules");
      const list = Array.isArray(result) ? result : Object.values(result).find(Array.isArray) || [];
      const cols = [...new Set(list.flatMap((x) => Object.keys(x)))].slice(0, 9);
      el.querySelector("#sched").innerHTML = list.length
        ? `<table data-testid="schedules"><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>${
          list.map((x) => `<tr>${cols.map((c) => `<td class="clip">${cell(x[c])}</td>`).join("")}</tr>`).join("")}</tbody></table>`
        : `<p class="empty">No schedule.</p>`;
    } catch (err) { showError(err); }
  };
  load();
  return listen({resync: load, groups: load});
}
