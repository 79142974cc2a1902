// The API client of the dashboard: the token (session storage), fetch with the envelope, and
// formatting helpers shared by the views.

const TOKEN_KEY = "vigil.token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) => value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code || "internal";
    this.details = error?.details || [];
  }
}

// Listeners of "this needs a token" (the app opens its token dialog).
const needsToken = new Set();
export const onNeedsToken = (fn) => needsToken.add(fn);

export async function api(path, {method = "GET", body, headers = {}} = {}) {
  const h = {...headers};
  const t = token.get();
  if (t) h.Authorization = `Bearer ${t}`;
  if (body !== undefined) h["Content-Type"] = "application/json";
  const r = await fetch(path, {method, headers: h, body: body === undefined ? undefined : JSON.stringify(body)});
  const type = r.headers.get("Content-Type") || "";
  const data = type.startsWith("application/json") ? await r.json() : await r.text();
  if (!r.ok || (typeof data === "object" && data.ok === false)) {
    const err = new ApiError(r.status, data?.error);
    if (r.status === 401 || r.status === 403) needsToken.forEach((fn) => fn(err));
    throw err;
  }
  return {result: data.result, seq: data.seq, headers: r.headers, status: r.status};
}

// A URL the browser fetches by itself (img, EventSource): the token rides as ?accessToken=.
export function authUrl(path) {
  const t = token.get();
  if (!t) return path;
  return path + (path.includes("?") ? "&" : "?") + "accessToken=" + encodeURIComponent(t);
}

export const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) =>
  ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

export const badge = (s, title = "") =>
  `<span class="badge ${esc(s)}" ${title ? `title="${esc(title)}"` : ""}>${esc(String(s).replace("_", " "))}</span>`;

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let v = Number(n), i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function bps(n) {
  if (!n) return "0";
  const units = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s"];
  let v = Number(n), i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(v < 10 && i ? 2 : 1)} ${units[i]}`;
}

export function ago(iso) {
  if (!iso) return "–";
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 60) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export const time = (iso) => iso ? new Date(iso).toLocaleString() : "–";

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

// A bar of used/total (load against capacity, memory, disk).
export function meter(used, total, label) {
  const pct = total ? Math.min(100, Math.round((used / total) * 100)) : 0;
  const level = pct >= 90 ? "hot" : pct >= 70 ? "warm" : "";
  return `<span class="meter ${level}" title="${esc(label || `${pct}%`)}"><span style="width:${pct}%"></span></span>` +
    `<span class="meter-text">${esc(label ?? `${pct}%`)}</span>`;
}

export const STATUSES = ["pending", "in_progress", "restarting", "failure", "done", "stopped"];
