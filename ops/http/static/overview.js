// The fleet at a glance: streams by status, why streams wait, agents with their load and host
// figures, redundancy groups and the alarms to act on.

import {badge, esc, meter, STATUSES} from "/static/api.js";
import {AGENT_HEAD, ALARM_HEAD, agentRows, alarmRows, bindAcks} from "/static/fleet.js";
import {listen, state} from "/static/store.js";

function cards(o) {
  const streams = STATUSES.map((s) => `<a class="card" href="#/streams?status=${s}" data-testid="count-${s}">
      <div class="label">${badge(s)}</div><div class="value">${(o.streams[s] || 0).toLocaleString()}</div></a>`).join("");
  const a = o.agents, g = o.groups, al = o.alarms;
  return `<div class="cards">
    <a class="card" href="#/streams" data-testid="count-total"><div class="label">streams</div>
      <div class="value">${o.streams_total.toLocaleString()}</div></a>${streams}</div>
    <div class="cards wide" style="margin-top:.6rem">
    <a class="card" href="#/agents"><div class="label">agents ready</div>
      <div class="value">${a.ready} <span class="sub">/ ${a.total}</span></div>
      <div class="sub">${a.not_ready ? `${a.not_ready} not ready` : "all ready"}${a.silent ? `, ${a.silent} silent` : ""}</div></a>
    <div class="card"><div class="label">load / capacity</div>
      <div class="value">${a.load.toLocaleString()} <span class="sub">/ ${a.capacity.toLocaleString()}</span></div>
      <div class="sub">${meter(a.load, a.capacity, a.capacity ? Math.round(100 * a.load / a.capacity) + " %" : "no capacity")}</div></div>
    <div class="card"><div class="label">outbox (unsent feedback)</div>
      <div class="value">${a.outbox_depth.toLocaleString()}</div><div class="sub">rows on agents</div></div>
    <a class="card" href="#/groups"><div class="label">active/standby groups</div>
      <div class="value">${g.active_standby}</div>
      <div class="sub">${g.on_standby} on standby, ${g.without_active} without active · ${g.total} groups</div></a>
    <a class="card" href="#/alarms"><div class="label">active alarms</div>
      <div class="value ${al.active ? "err" : ""}" data-testid="count-alarms">${al.active}</div>
      <div class="sub">${al.unacked} not acknowledged${Object.entries(al.by_severity).map(([k, n]) => ` · ${n} ${esc(k)}`).join("")}</div></a>
    </div>`;
}

function waiting(o) {
  if (!o.waiting.length) return `<p class="empty">No stream waits for an agent.</p>`;
  return `<table><thead><tr><th class="num">streams</th><th>reason</th><th>group</th></tr></thead><tbody>${
    o.waiting.map((w) => `<tr><td class="num">${w.count.toLocaleString()}</td>
      <td class="why">${badge(w.code)} ${esc(w.message)}</td>
      <td>${w.group ? `<a href="#/streams?status=pending&group=${encodeURIComponent(w.group)}">${esc(w.group)}</a>` : "–"}</td></tr>`).join("")
  }</tbody></table>`;
}

export function mount(el) {
  el.innerHTML = `<div id="ov-cards" data-testid="overview"><p class="empty">Loading…</p></div>
    <div class="panel"><h3>Why streams wait</h3><div id="ov-waiting"></div></div>
    <div class="panel"><h3>Active alarms</h3><table class="streams"><thead>${ALARM_HEAD}</thead><tbody id="ov-alarms"></tbody></table></div>
    <div class="panel"><h3>Agents</h3><div class="scroll"><table><thead>${AGENT_HEAD}</thead><tbody id="ov-agents"></tbody></table></div></div>`;
  const renderOverview = () => {
    const o = state.overview;
    if (!o) return;
    el.querySelector("#ov-cards").innerHTML = cards(o);
    el.querySelector("#ov-waiting").innerHTML = waiting(o);
  };
  const renderAgents = () => {
    const agents = [...state.agents.values()].sort((a, b) =>
      (a.status === b.status ? 0 : a.status === "ready" ? 1 : -1) || a.name.localeCompare(b.name));
    el.querySelector("#ov-agents").innerHTML = agentRows(agents.slice(0, 50));
  };
  const renderAlarms = () => {
    const active = [...state.alarms.values()].filter((a) => a.active)
      .sort((a, b) => (b.raised_at || "").localeCompare(a.raised_at || ""));
    el.querySelector("#ov-alarms").innerHTML = alarmRows(active.slice(0, 10));
  };
  bindAcks(el.querySelector("#ov-alarms"), renderAlarms);
  renderOverview(); renderAgents(); renderAlarms();
  return listen({overview: renderOverview, agents: renderAgents, alarms: renderAlarms,
                 resync: () => { renderAgents(); renderAlarms(); }});
}
