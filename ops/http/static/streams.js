// Streams: the list (filters, search, cursor paging that stays right at any size, live rows),
// a stream's detail (status, agent, why it waits, history, analysis records with thumbnails,
// daily statistics) and the actions: create, start, stop, delete.

import {ago, api, authUrl, badge, esc, STATUSES, time} from "/static/api.js";
import {dailyChart} from "/static/stats.js";
import {listen, navigate, showError, state} from "/static/store.js";

const PAGE = 50;

// ---- actions ------------------------------------------------------------------------------

export async function act(stream, action) {
  try {
    if (action === "delete") {
      if (!confirm(`Delete stream ${stream.name} (${stream.stream_id})? This is final.`)) return null;
      await api(`/api/v1/streams/${stream.stream_id}`, {method: "DELETE", headers: {"If-Match": `"${stream.version}"`}});
      return {deleted: true};
    }
    const {result} = await api(`/api/v1/streams/${stream.stream_id}`,
      {method: "PATCH", body: {action}, headers: {"If-Match": `"${stream.version}"`}});
    showError(null);
    return result;
  } catch (err) {
    showError(err.status === 412 ? new Error(`${stream.stream_id} changed meanwhile: look again and retry`) : err);
    return null;
  }
}

const canStart = (s) => ["stopped", "done", "failure"].includes(s.status);
const canStop = (s) => ["pending", "in_progress", "restarting"].includes(s.status);

function actionButtons(s) {
  return (canStart(s) ? `<button class="small" data-act="start" data-testid="start">Start</button>` : "") +
    (canStop(s) ? `<button class="small" data-act="stop" data-testid="stop">Stop</button>` : "") +
    `<button class="small danger" data-act="delete" data-testid="delete">Delete</button>`;
}

function why(s) {
  if (s.waiting) return `<span class="why" title="${esc(s.waiting.message)}">${esc(s.waiting.message)}</span>`;
  if (s.last_error) {
    const text = `${s.last_error.code}: ${s.last_error.message}`;
    return `<span class="err" title="${esc(text)}">${esc(text)}</span>`;
  }
  return "";
}

// ---- the create dialog ----------------------------------------------------------------------

export function openCreate(onCreated) {
  const dialog = document.getElementById("create-dialog");
  const form = document.getElementById("create-form");
  const error = document.getElementById("create-error");
  error.textContent = "";
  form.reset();
  document.getElementById("create-cancel").onclick = () => dialog.close();
  form.onsubmit = async (e) => {
    e.preventDefault();
    const f = form.elements;
    const body = {source: {url: f.url.value.trim()}, kind: f.kind.value};
    if (f.name.value.trim()) body.name = f.name.value.trim();
    if (f.group.value.trim()) body.group = f.group.value.trim();
    const names = f.analytics.value.split(",").map((x) => x.trim()).filter(Boolean);
    if (names.length) body.analytics = names.map((name) => ({name}));
    if (f.unregistered.checked) body.allow_unregistered = true;
    try {
      const {result} = await api("/api/v1/streams", {method: "POST", body});
      dialog.close();
      onCreated(result);
    } catch (err) {
      error.textContent = err.message + (err.details || []).map((d) => ` (${d.path})`).join("");
    }
  };
  dialog.showModal();
}

// ---- the list -----------------------------------------------------------------------------

function matches(s, f) {
  if (f.status && s.status !== f.status) return false;
  if (f.group && s.group !== f.group) return false;
  if (f.agent_id && s.agent_id !== f.agent_id) return false;
  if (f.q) {
    const q = f.q.toLowerCase();
    const texts = [s.stream_id, s.name, s.source.url, s.agent_id || "", ...Object.values(s.labels)];
    if (!texts.some((t) => t.toLowerCase().includes(q))) return false;
  }
  return true;
}

function row(s) {
  const agent = s.agent_id ? state.agents.get(s.agent_id) : null;
  return `<tr class="clickable" data-id="${esc(s.stream_id)}" data-status="${esc(s.status)}">
    <td class="clip" title="${esc(s.source.url)}"><b>${esc(s.name)}</b><br><span class="muted mono">${esc(s.stream_id)}</span></td>
    <td data-testid="status">${badge(s.status)}</td>
    <td class="clip" title="${esc(s.agent_id || "")}">${agent ? esc(agent.name) : esc(s.agent_id || "–")}</td>
    <td class="clip">${esc(s.group || "–")}</td>
    <td>${esc(s.kind)}</td>
    <td class="num">${s.restarts}</td>
    <td class="clip">${why(s)}</td>
    <td title="${esc(s.updated_at)}">${esc(ago(s.updated_at))}</td>
    <td class="actions">${actionButtons(s)}</td></tr>`;
}

export function mountList(el, params) {
  const filters = {status: params.status || "", group: params.group || "", agent_id: params.agent_id || "",
                   q: params.q || "", order: params.order || "newest"};
  const cursors = [null];   // the cursor of each page shown so far
  let page = 0, rows = [], next = null, stale = false;
  const groups = [...state.groups.keys()].sort();
  el.innerHTML = `<div class="toolbar">
      <input type="search" placeholder="search id, name, source, agent, label" value="${esc(filters.q)}" data-testid="search">
      <select data-f="status" data-testid="filter-status"><option value="">every status</option>${STATUSES.map((s) =>
        `<option ${s === filters.status ? "selected" : ""}>${s}</option>`).join("")}</select>
      <select data-f="group"><option value="">every group</option>${[...new Set([...groups, filters.group].filter(Boolean))].map((g) =>
        `<option ${g === filters.group ? "selected" : ""}>${esc(g)}</option>`).join("")}</select>
      <select data-f="order"><option value="newest">newest first</option><option value="oldest" ${filters.order === "oldest" ? "selected" : ""}>oldest first</option></select>
      ${filters.agent_id ? `<span class="badge">agent ${esc(filters.agent_id)} <a href="#/streams">×</a></span>` : ""}
      <span class="grow"></span>
      <button class="primary" id="new-stream" data-testid="new-stream">New stream</button></div>
    <table class="streams" data-testid="streams"><colgroup><col style="width:20%"><col style="width:7.5rem"><col style="width:8%">
      <col style="width:7%"><col style="width:3.9rem"><col style="width:3.6rem"><col><col style="width:5.6rem"><col style="width:8.6rem"></colgroup>
      <thead><tr><th>stream</th><th>status</th><th>agent</th><th>group</th><th>kind</th><th class="num" title="restarts">restarts</th>
      <th>why it waits / last error</th><th>updated</th><th></th></tr></thead><tbody></tbody></table>
    <div class="pager"><span class="muted" id="range" data-testid="range"></span>
      <button id="prev" data-testid="prev">‹ Previous</button><button id="next" data-testid="next">Next ›</button></div>`;
  const body = el.querySelector("tbody");

  const query = () => {
    const q = new URLSearchParams({limit: PAGE, order: filters.order});
    for (const k of ["status", "group", "agent_id", "q"]) if (filters[k]) q.set(k, filters[k]);
    if (cursors[page]) q.set("cursor", cursors[page]);
    return q;
  };
  const total = () => {   // exact from the overview when the filter is at most a status
    const o = state.overview;
    if (!o || filters.group || filters.agent_id || filters.q) return null;
    return filters.status ? o.streams[filters.status] || 0 : o.streams_total;
  };
  const renderRange = () => {
    const n = total();
    const first = page * PAGE + 1, last = page * PAGE + rows.length;
    el.querySelector("#range").textContent = rows.length
      ? `${first.toLocaleString()}–${last.toLocaleString()}${n !== null ? ` of ${n.toLocaleString()}` : ""}` : "no stream";
    el.querySelector("#prev").disabled = page === 0;
    el.querySelector("#next").disabled = !next;
  };
  const render = () => {
    body.innerHTML = rows.length ? rows.map(row).join("")
      : `<tr><td colspan="9" class="empty">No stream${filters.status || filters.q ? " matches" : " yet: create one"}.</td></tr>`;
    renderRange();
  };
  const load = async () => {
    try {
      const {result} = await api(`/api/v1/streams?${query()}`);
      rows = result.streams; next = result.next_cursor; stale = false;
      render();
    } catch (err) { showError(err); }
  };
  const setFilter = (k, v) => {
    filters[k] = v;
    const q = new URLSearchParams(Object.entries(filters).filter(([key, val]) => val && !(key === "order" && val === "newest")));
    history.replaceState(null, "", `#/streams${q.toString() ? "?" + q : ""}`);
    cursors.length = 1; page = 0; load();
  };
  let typing = null;
  el.querySelector("input[type=search]").addEventListener("input", (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => setFilter("q", e.target.value.trim()), 250);
  });
  for (const sel of el.querySelectorAll("select[data-f]")) sel.onchange = () => setFilter(sel.dataset.f, sel.value);
  el.querySelector("#next").onclick = () => { if (next) { cursors[page + 1] = next; page++; load(); } };
  el.querySelector("#prev").onclick = () => { if (page > 0) { page--; load(); } };
  el.querySelector("#new-stream").onclick = () => openCreate((s) => navigate(`#/streams/${s.stream_id}`));
  body.addEventListener("click", async (e) => {
    const tr = e.target.closest("tr[data-id]");
    if (!tr) return;
    const s = rows.find((x) => x.stream_id === tr.dataset.id);
    const action = e.target.dataset.act;
    if (!action) { navigate(`#/streams/${tr.dataset.id}`); return; }
    e.stopPropagation();
    e.target.disabled = true;
    const done = await act(s, action);
    if (done?.deleted) { rows = rows.filter((x) => x !== s); render(); } else if (done) onChanged({changed: [done], removed: [], more: 0});
    else e.target.disabled = false;
  });

  // Live rows: update what is shown; new streams appear on the first page of newest-first.
  const onChanged = ({changed, removed, more}) => {
    if (more) stale = true;
    let touched = false;
    for (const s of changed) {
      const i = rows.findIndex((x) => x.stream_id === s.stream_id);
      if (i >= 0) {
        if (rows[i].version > s.version) continue;
        rows[i] = s; touched = true;
        const tr = body.querySelector(`tr[data-id="${CSS.escape(s.stream_id)}"]`);
        if (tr) { tr.outerHTML = row(s); body.querySelector(`tr[data-id="${CSS.escape(s.stream_id)}"]`)?.classList.add("flash"); }
      } else if (page === 0 && filters.order === "newest" && s.version === 1 && matches(s, filters)) {
        rows.unshift(s); touched = true;
        if (rows.length > PAGE) { rows.pop(); next = next || "more"; }
        render();
        body.querySelector(`tr[data-id="${CSS.escape(s.stream_id)}"]`)?.classList.add("flash");
      }
    }
    if (removed.length && rows.some((x) => removed.includes(x.stream_id))) {
      rows = rows.filter((x) => !removed.includes(x.stream_id)); touched = true; render();
    }
    if (stale) load();   // too many changes to follow one by one: reload this page only
    else if (touched) renderRange();
  };
  load();
  let agentsKnown = state.agents.size;
  const onAgents = () => {   // names for agent ids the rows show (a new agent appeared)
    if (state.agents.size !== agentsKnown) { agentsKnown = state.agents.size; render(); }
  };
  return listen({streams: onChanged, overview: renderRange, resync: load, agents: onAgents});
}

// ---- a stream's detail --------------------------------------------------------------------

function fields(s) {
  const agent = s.agent_id ? state.agents.get(s.agent_id) : null;
  const rows = [
    ["id", `<span class="mono">${esc(s.stream_id)}</span>`],
    ["source", `<span class="mono">${esc(s.source.url)}</span>${s.source.credentials ? " (credentials kept apart)" : ""}`],
    ["kind", esc(s.kind)],
    ["agent", s.agent_id ? `${agent ? `<a href="#/agents">${esc(agent.name)}</a> ` : ""}<span class="mono">${esc(s.agent_id)}</span>` : "–"],
    ["group", s.group ? `<a href="#/streams?group=${encodeURIComponent(s.group)}">${esc(s.group)}</a>` : "–"],
    ["why it waits", s.waiting ? `<span class="why" data-testid="waiting">${badge(s.waiting.code)} ${esc(s.waiting.message)}</span>` : "–"],
    ["last error", s.last_error ? `<span class="err">${esc(s.last_error.code)}: ${esc(s.last_error.message)}${s.last_error.fatal ? " (fatal)" : ""}</span>` : "–"],
    ["restarts", `${s.restarts}${s.restart_not_before ? ` (next not before ${esc(time(s.restart_not_before))})` : ""}`],
    ["analytics", esc(s.analytics.map((a) => a.name).join(", ") || "–")],
    ["labels", esc(Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "–")],
    ["version", s.version],
    ["created", esc(time(s.created_at))],
    ["updated", esc(time(s.updated_at))],
  ];
  return `<dl class="fields">${rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("")}</dl>`;
}

function timeline(entries) {
  if (!entries.length) return `<p class="empty">No event.</p>`;
  return `<ol class="timeline" data-testid="history">${[...entries].reverse().map((e) => `
    <li class="${e.before !== e.after ? "change" : ""} ${e.applied ? "" : "noop"}">
      <b>${esc(e.event)}</b> ${e.before !== e.after ? `${e.before ? badge(e.before) : "∅"} → ${badge(e.after || "")}` : ""}
      ${e.applied ? "" : `<span class="muted">(superseded: changed nothing)</span>`}
      <div class="when">${esc(time(e.time))} · ${esc(e.cause)}</div></li>`).join("")}</ol>`;
}

function records(list) {
  if (!list.records.length) return `<p class="empty">No analysis record yet (records are kept 30 days).</p>`;
  return `<div class="records" data-testid="records">${list.records.map((r) => {
    const frame = r.frames.find((f) => f.url);
    return `<div class="record">${frame ? `<img src="${esc(authUrl(frame.url))}" alt="${esc(r.event)} at ${r.started_at}" loading="lazy" data-testid="thumbnail">` : ""}
      <div class="cap"><b>${esc(r.event)}</b> · score ${r.score.toFixed(2)}<br>
      <span class="muted">${esc(new Date(r.started_at * 1000).toLocaleTimeString())} · ${(r.ended_at - r.started_at).toFixed(1)} s · ${r.frames.length} frame(s)</span></div></div>`;
  }).join("")}</div><p class="muted">${list.total} record(s) kept for this stream.</p>`;
}

export function mountDetail(el, params) {
  const id = params.id;
  let stream = null, version = 0;
  el.innerHTML = `<p><a href="#/streams">‹ streams</a></p>
    <div class="detail-head"><h2 id="d-title" style="margin:0">${esc(id)}</h2><span id="d-status" data-testid="detail-status"></span>
      <span class="actions" id="d-actions"></span></div>
    <div class="grid2"><div class="panel"><h3>Stream</h3><div id="d-fields"><p class="empty">Loading…</p></div></div>
      <div class="panel"><h3>History</h3><div id="d-history"></div></div></div>
    <div class="panel"><h3>Latest analysis records</h3><div id="d-records"></div></div>
    <div class="panel"><h3>Daily statistics (last 14 days)</h3><div id="d-stats"></div></div>`;
  const $ = (sel) => el.querySelector(sel);
  const render = () => {
    $("#d-title").textContent = stream.name;
    $("#d-status").innerHTML = badge(stream.status);
    $("#d-actions").innerHTML = actionButtons(stream);
    $("#d-fields").innerHTML = fields(stream);
  };
  const loadHistory = async () => {
    try { $("#d-history").innerHTML = timeline((await api(`/api/v1/streams/${id}/history`)).result.entries); }
    catch (err) { $("#d-history").innerHTML = `<p class="empty">${esc(err.message)}</p>`; }
  };
  const loadRecords = async () => {
    try { $("#d-records").innerHTML = records((await api(`/api/v1/streams/${id}/records?limit=8`)).result); }
    catch (err) { $("#d-records").innerHTML = `<p class="empty">${esc(err.message)}</p>`; }
  };
  const load = async () => {
    try {
      stream = (await api(`/api/v1/streams/${id}`)).result;
      version = stream.version;
      render();
      loadHistory(); loadRecords();
      dailyChart($("#d-stats"), {stream_id: id}, "stream");
    } catch (err) {
      if (err.status === 404) { $("#d-fields").innerHTML = `<p class="empty">No stream ${esc(id)} (deleted?).</p>`; $("#d-actions").innerHTML = ""; }
      else showError(err);
    }
  };
  $("#d-actions").addEventListener("click", async (e) => {
    const action = e.target.dataset.act;
    if (!action || !stream) return;
    e.target.disabled = true;
    const done = await act(stream, action);
    if (done?.deleted) navigate("#/streams");
    else if (done) { onChanged({changed: [done], removed: []}); }
    else e.target.disabled = false;
  });
  const onChanged = ({changed, removed}) => {
    if (removed.includes(id)) { load(); return; }
    const s = changed.find((x) => x.stream_id === id);
    if (!s || (stream && s.version < stream.version)) return;
    stream = s; render();
    if (s.version !== version) { version = s.version; loadHistory(); loadRecords(); }
  };
  // New analysis records are pushed (their stream id and sequence): reload this stream's newest.
  const onRecords = ({records: added}) => {
    if (added.some((r) => r.stream_id === id)) loadRecords();
  };
  load();
  return listen({streams: onChanged, resync: load, records: onRecords});
}
