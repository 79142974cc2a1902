// What the views share: the state the live feed keeps current, an event bus, navigation.

export const state = {
  overview: null,
  agents: new Map(),   // agent_id -> AgentView
  groups: new Map(),   // name -> GroupView
  alarms: new Map(),   // alarm_id -> AlarmView
  managerId: "",
  hasSchedules: false,
};

// Events: overview, streams {changed, removed, more}, agents, groups, alarms, resync (after a
// (re)connection: views reload what they show).
export const bus = new EventTarget();
export const emit = (name, detail) => bus.dispatchEvent(new CustomEvent(name, {detail}));

// Subscribe for as long as a view is mounted: returns the unsubscribe function.
export function listen(handlers) {
  const entries = Object.entries(handlers).map(([name, fn]) => [name, (e) => fn(e.detail)]);
  for (const [name, fn] of entries) bus.addEventListener(name, fn);
  return () => { for (const [name, fn] of entries) bus.removeEventListener(name, fn); };
}

export function showError(err) {
  document.getElementById("error").textContent = err ? (err.message || String(err)) : "";
}

export function navigate(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}
