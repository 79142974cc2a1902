// Agents (AddPac's monitoring screen), redundancy groups and alarms.

import {ago, api, badge, bytes, esc, meter, time} from "/static/api.js";
import {listen, showError, state} from "/static/store.js";

// ---- agents ---------------------------------------------------------------------------------

export function agentRows(agents) {
  if (!agents.length) return `<tr><td colspan="9" class="empty">No agent has registered yet.</td></tr>`;
  return agents.map((a) => {
    const hb = a.last_heartbeat;
    const pct = (used, total) => total ? `${Math.round(100 * used / total)} %` : "–";
    const mem = hb ? `<span title="${esc(bytes(hb.mem_used))} of ${esc(bytes(hb.mem_total))}">${meter(hb.mem_used, hb.mem_total, bytes(hb.mem_used))}</span>` : "–";
    const disk = hb ? `<span title="${esc(bytes(hb.disk_used))} of ${esc(bytes(hb.disk_total))}">${meter(hb.disk_used, hb.disk_total, pct(hb.disk_used, hb.disk_total))}</span>` : "–";
    const stale = hb && hb.age_s > 3 * a.heartbeat_interval_s;
    return `<tr data-agent="${esc(a.agent_id)}">
      <td title="${esc(a.agent_id)}"><b>${esc(a.name)}</b><br><span class="muted mono">${esc(a.agent_id)}</span></td>
      <td>${badge(a.status, a.not_ready_reason || "")}</td>
      <td class="clip">${a.active_groups.length || a.standby_groups.length
        ? `${a.active_groups.length ? `<span title="active">▶ ${esc(a.active_groups.join(", "))}</span>` : ""}
           ${a.standby_groups.length ? `<span class="muted" title="standby">◇ ${esc(a.standby_groups.join(", "))}</span>` : ""}`
        : "–"}</td>
      <td>${meter(a.load, a.capacity, `${a.load} / ${a.capacity}`)}</td>
      <td class="num">${hb ? hb.cpu_percent.toFixed(1) + " %" : "–"}</td>
      <td>${mem}</td><td>${disk}</td>
      <td class="num">${hb ? hb.outbox_depth : "–"}</td>
      <td class="${stale ? "err" : ""}">${hb ? hb.age_s.toFixed(1) + " s" : "never"}</td></tr>`;
  }).join("");
}

export const AGENT_HEAD = `<tr><th>agent</th><th>status</th><th title="▶ active · ◇ standby">groups</th>
  <th>streams</th><th class="num">cpu</th><th>memory</th><th>disk</th>
  <th class="num">outbox</th><th>heartbeat</th></tr>`;

const byName = (a, b) => a.name.localeCompare(b.name) || a.agent_id.localeCompare(b.agent_id);

export function mountAgents(el) {
  el.innerHTML = `<h2>Agents</h2><div class="scroll"><table data-testid="agents">
    <thead>${AGENT_HEAD}</thead><tbody></tbody></table></div>`;
  const render = () => { el.querySelector("tbody").innerHTML = agentRows([...state.agents.values()].sort(byName)); };
  render();
  return listen({agents: render, resync: render});
}

// ---- groups ---------------------------------------------------------------------------------

export function mountGroups(el) {
  el.innerHTML = `<h2>Groups</h2><div class="scroll"><table data-testid="groups"><thead><tr>
    <th>group</th><th>mode</th><th>active member</th><th>members (priority)</th><th class="num">streams</th>
    <th class="num">failovers</th><th class="num">failbacks</th><th>why</th></tr></thead><tbody></tbody></table></div>`;
  const render = () => {
    const groups = [...state.groups.values()].sort((a, b) => a.name.localeCompare(b.name));
    el.querySelector("tbody").innerHTML = groups.length ? groups.map((g) => `<tr>
      <td><b>${esc(g.name)}</b></td><td>${esc(g.mode.replace("_", "/"))}</td>
      <td>${g.mode === "active_standby" ? (g.active ? esc(g.active) : badge("none", "no member is healthy")) : "all ready members"}</td>
      <td>${g.members.map((m) => `${badge(m.role === "member" ? m.status : m.role, m.status)} ${esc(m.agent)} (${m.priority})`).join(" ") || "–"}</td>
      <td class="num"><a href="#/streams?group=${encodeURIComponent(g.name)}">${g.streams}</a></td>
      <td class="num">${g.failovers}</td><td class="num">${g.failbacks}</td>
      <td class="clip" title="${esc(g.last_change || "")}">${esc(g.last_change || "")}</td></tr>`).join("")
      : `<tr><td colspan="8" class="empty">No group. <code>vigil group create NAME --mode active_standby --member A:1 --member B:2</code></td></tr>`;
  };
  render();
  return listen({groups: render, resync: render});
}

// ---- alarms ---------------------------------------------------------------------------------

export async function ack(alarmId, button) {
  if (button) button.disabled = true;
  try {
    const {result} = await api(`/api/v1/alarms/${encodeURIComponent(alarmId)}/ack`, {method: "POST", body: {by: "dashboard"}});
    state.alarms.set(result.alarm_id, result);
    showError(null);
    return result;
  } catch (err) {
    showError(err);
    if (button) button.disabled = false;
    return null;
  }
}

export function alarmRows(alarms) {
  if (!alarms.length) return `<tr><td colspan="6" class="empty">No alarm.</td></tr>`;
  return alarms.map((a) => `<tr data-alarm="${esc(a.alarm_id)}">
    <td title="${esc(a.raised_at)}">${esc(ago(a.raised_at))}</td>
    <td>${badge(a.active ? a.severity : "cleared", a.active ? "" : `cleared ${a.cleared_at || ""}: ${a.clear_reason || ""}`)}</td>
    <td>${esc(a.kind)}</td><td class="mono">${esc(a.source)}</td>
    <td class="clip" title="${esc(a.reason)}">${esc(a.reason)}</td>
    <td>${a.acked ? `<span title="${esc(time(a.acked_at))}">✓ ${esc(a.acked_by)}</span>`
      : `<button class="small" data-ack="${esc(a.alarm_id)}" data-testid="ack">Ack</button>`}</td></tr>`).join("");
}

export const ALARM_HEAD = `<tr><th style="width:7rem">raised</th><th style="width:6rem">severity</th>
  <th style="width:11rem">kind</th><th style="width:13rem">source</th><th>reason</th><th style="width:8rem">ack</th></tr>`;

export function bindAcks(container, after) {
  container.addEventListener("click", async (e) => {
    const id = e.target?.dataset?.ack;
    if (id && await ack(id, e.target)) after();
  });
}

const newest = (a, b) => (b.raised_at || "").localeCompare(a.raised_at || "") || b.alarm_id.localeCompare(a.alarm_id);

export function mountAlarms(el, params) {
  const onlyActive = params.all !== "1";
  el.innerHTML = `<div class="toolbar"><h2 style="margin:0">Alarms</h2><span class="grow"></span>
    <a href="#/alarms${onlyActive ? "?all=1" : ""}">${onlyActive ? "show cleared too" : "active only"}</a></div>
    <table class="streams" data-testid="alarms"><thead>${ALARM_HEAD}</thead><tbody></tbody></table>
    <p class="muted">Kept for the retention period (10 days by default); every raise, clear and
    acknowledgement is also published on <code>vigil.alarm.&gt;</code>.</p>`;
  const body = el.querySelector("tbody");
  const render = () => {
    const rows = [...state.alarms.values()].filter((a) => !onlyActive || a.active).sort(newest);
    body.innerHTML = alarmRows(rows.slice(0, 500));
  };
  bindAcks(body, render);
  render();
  return listen({alarms: render, resync: render});
}
