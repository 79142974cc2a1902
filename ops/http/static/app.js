// The dashboard: a hash router over the views, the live feed (server-sent events from the
// manager's projections: no polling of lists), the token dialog and the shared state.

import {api, authUrl, onNeedsToken, token} from "/static/api.js";
import {emit, showError, state} from "/static/store.js";
import * as overview from "/static/overview.js";
import * as streams from "/static/streams.js";
import * as fleet from "/static/fleet.js";
import * as stats from "/static/stats.js";

async function loadLists() {
  const [agents, groups, alarms] = await Promise.all([
    api("/api/v1/agents"), api("/api/v1/groups"), api("/api/v1/alarms?limit=500")]);
  state.agents = new Map(agents.result.agents.map((a) => [a.agent_id, a]));
  state.groups = new Map(groups.result.groups.map((g) => [g.name, g]));
  state.alarms = new Map(alarms.result.alarms.map((a) => [a.alarm_id, a]));
  emit("agents"); emit("groups"); emit("alarms");
}

// ---- live feed ----------------------------------------------------------------------------

let source = null;

function setLive(on, text) {
  const el = document.getElementById("live");
  el.className = "live " + (on ? "on" : "off");
  el.textContent = text;
}

function connectLive() {
  if (source) source.close();
  source = new EventSource(authUrl("/api/v1/live"));
  const on = (name, fn) => source.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  on("hello", async (d) => {
    state.managerId = d.manager_id;
    setLive(true, "live");
    try { await loadLists(); showError(null); } catch (err) { showError(err); }
    emit("resync");
  });
  on("overview", (o) => {
    state.overview = o;
    const m = o.this_manager;
    document.getElementById("meta").textContent =
      `manager ${o.manager_id}${m.is_master ? " (master, epoch " + m.epoch + ")" : ""} · event ${o.seq}`;
    const count = document.getElementById("alarm-count");
    count.textContent = o.alarms.active || "";
    count.dataset.n = o.alarms.active;
    emit("overview", o);
  });
  on("streams", (d) => emit("streams", d));
  on("agents", (d) => { for (const a of d.agents) state.agents.set(a.agent_id, a); emit("agents", d); });
  on("groups", (d) => {
    for (const g of d.groups) state.groups.set(g.name, g);
    for (const name of d.removed) state.groups.delete(name);
    emit("groups", d);
  });
  on("alarms", (d) => { for (const a of d.alarms) state.alarms.set(a.alarm_id, a); emit("alarms", d); });
  on("records", (d) => emit("records", d));
  source.onerror = async () => {
    setLive(false, "reconnecting…");
    try { await api("/api/v1/overview"); } catch (err) { if (err.status === 401) source.close(); }
  };
}

// ---- token ----------------------------------------------------------------------------------

function tokenDialog(why) {
  const dialog = document.getElementById("token-dialog");
  if (why) document.getElementById("token-why").textContent = why;
  dialog.querySelector("input").value = token.get();
  if (!dialog.open) dialog.showModal();
}

function setupToken() {
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const button = document.getElementById("token-button");
  const label = () => { button.textContent = token.get() ? "Token ✓" : "Token"; };
  label();
  button.onclick = () => tokenDialog();
  document.getElementById("token-cancel").onclick = () => dialog.close();
  document.getElementById("token-clear").onclick = () => { token.set(""); label(); dialog.close(); connectLive(); };
  form.addEventListener("submit", () => {
    token.set(form.elements.token.value.trim());
    label();
    connectLive();
    route();
  });
  onNeedsToken((err) => tokenDialog(err.status === 401
    ? `This needs a token: ${err.message}`
    : `This token may not do that: ${err.message}`));
}

// ---- router ---------------------------------------------------------------------------------

const VIEWS = {
  overview: overview.mount, streams: streams.mountList, stream: streams.mountDetail,
  agents: fleet.mountAgents, groups: fleet.mountGroups, alarms: fleet.mountAlarms,
  stats: stats.mountStats, schedules: stats.mountSchedules,
};
let unmount = null;

function parseHash() {
  const [path, query = ""] = (location.hash.replace(/^#\/?/, "") || "overview").split("?");
  const parts = path.split("/").map(decodeURIComponent);
  const params = Object.fromEntries(new URLSearchParams(query));
  if (parts[0] === "streams" && parts[1]) return {view: "stream", tab: "streams", params: {...params, id: parts[1]}};
  return {view: VIEWS[parts[0]] ? parts[0] : "overview", tab: parts[0], params};
}

function route() {
  const {view, tab, params} = parseHash();
  for (const a of document.querySelectorAll("nav.tabs a[data-tab]"))
    a.classList.toggle("active", a.dataset.tab === tab);
  if (unmount) unmount();
  showError(null);
  const el = document.getElementById("view");
  el.innerHTML = "";
  unmount = VIEWS[view](el, params) || null;
}

async function start() {
  setupToken();
  try {  // the schedules tab appears when this manager serves them (issue 13)
    const doc = await (await fetch("/openapi.json")).json();
    state.hasSchedules = "/api/v1/schedules" in doc.paths;
    document.getElementById("schedules-tab").hidden = !state.hasSchedules;
  } catch (err) { showError(err); }
  window.addEventListener("hashchange", route);
  route();
  connectLive();
}

start();
