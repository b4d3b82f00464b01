// The gearbox web console: a page over the broker's REST API. It logs in
// with a login and password (POST /console/session, which sets the
// session cookie) and sends the session's CSRF token with every change.
"use strict";

const API = "/broker/rest";
let session = null; // {login, admin, csrf}
let logStream = null; // the AbortController of a followed log

const $ = (id) => document.getElementById(id);

// el builds an element: el("td", {class: "ok"}, "text", child, ...).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function showError(msg) {
  const e = $("error");
  e.textContent = msg;
  e.hidden = !msg;
}

// call calls the REST API and returns the envelope's data; it throws an
// Error with the broker's message on failure.
async function call(method, path, body, contentType) {
  const headers = { Accept: "application/json", "X-Gearbox-Console": "1" };
  if (method !== "GET" && session) headers["X-Gearbox-CSRF"] = session.csrf;
  let payload = body;
  if (body && !(body instanceof Blob) && !(body instanceof File)) {
    payload = new URLSearchParams(body);
    headers["Content-Type"] = "application/x-www-form-urlencoded";
  } else if (body) {
    headers["Content-Type"] = contentType || "application/octet-stream";
  }
  const resp = await fetch(path.startsWith("/") ? path : API + "/" + path, {
    method, headers, body: payload, credentials: "same-origin",
  });
  let env = null;
  try { env = await resp.json(); } catch (e) { /* not an envelope */ }
  if (resp.status === 401 && session) {
    session = null;
    route();
  }
  if (!resp.ok) {
    const msgs = env && env.messages ? env.messages.map((m) => m.text).join(" ") : resp.statusText;
    throw new Error(msgs || "request failed: " + resp.status);
  }
  return env ? env.data : null;
}

// act runs a change and shows its error, then redraws the view.
async function act(fn) {
  showError("");
  try {
    await fn();
  } catch (e) {
    showError(e.message);
  }
  await route();
}

async function login(ev) {
  ev.preventDefault();
  showError("");
  const user = $("login-user").value, pass = $("login-password").value;
  const resp = await fetch("/console/session", {
    method: "POST", credentials: "same-origin",
    headers: { Authorization: "Basic " + btoa(unescape(encodeURIComponent(user + ":" + pass))), Accept: "application/json",
      "X-Gearbox-Console": "1" },
  });
  const env = await resp.json().catch(() => null);
  if (!resp.ok) {
    showError(env && env.messages ? env.messages.map((m) => m.text).join(" ") : "login failed");
    return;
  }
  session = env.data;
  $("login-password").value = "";
  location.hash = "#/apps";
  await route();
}

async function logout() {
  stopLog();
  try { await call("DELETE", "/console/session"); } catch (e) { /* gone already */ }
  session = null;
  location.hash = "";
  await route();
}

function stopLog() {
  if (logStream) logStream.abort();
  logStream = null;
}

// route draws the view that the location's hash names.
async function route() {
  stopLog();
  if (!session) {
    try {
      const resp = await fetch("/console/session", { credentials: "same-origin",
        headers: { Accept: "application/json", "X-Gearbox-Console": "1" } });
      if (resp.ok) session = (await resp.json()).data;
    } catch (e) { /* not logged in */ }
  }
  $("login").hidden = !!session;
  $("nav").hidden = !session;
  $("view").hidden = !session;
  if (!session) return;
  $("who").textContent = session.login + (session.admin ? " (admin)" : "");
  for (const a of document.querySelectorAll(".admin")) a.hidden = !session.admin;
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const view = $("view");
  try {
    let content;
    if (parts[0] === "app" && parts.length === 3) content = await appView(parts[1], parts[2]);
    else if (parts[0] === "alerts") content = await alertsView();
    else if (parts[0] === "nodes" && session.admin) content = await nodesView();
    else if (parts[0] === "users" && session.admin) content = await usersView();
    else content = await appsView();
    view.replaceChildren(content);
  } catch (e) {
    showError(e.message);
  }
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

async function appsView() {
  const domains = (await call("GET", "domains")) || [];
  const out = el("div", { id: "apps-view" }, el("h2", {}, "Applications"));
  for (const d of domains) {
    const apps = (await call("GET", "domains/" + encodeURIComponent(d.name) + "/applications")) || [];
    out.append(el("h3", {}, "Domain " + d.name),
      table(["Application", "State", "Gears", "HA", "URL"], apps.map((a) => el("tr", { "data-app": a.name },
        el("td", {}, el("a", { href: "#/app/" + d.name + "/" + a.name }, a.name)),
        el("td", {}, a.state), el("td", {}, a.gear_count), el("td", {}, a.ha ? "yes" : "no"),
        el("td", {}, a.app_url)))));
    const form = el("form", { id: "create-app-" + d.name, onsubmit: (ev) => {
      ev.preventDefault();
      const f = new FormData(ev.target);
      act(() => call("POST", "domains/" + encodeURIComponent(d.name) + "/applications",
        { name: f.get("name"), scale: f.get("scale") ? "true" : "false", ha: f.get("ha") ? "true" : "false" }));
    } },
    el("label", {}, "New application", el("input", { name: "name", required: true, pattern: "[a-z0-9]{1,32}", class: "new-app-name" })),
    el("label", {}, "Scalable", el("input", { type: "checkbox", name: "scale" })),
    el("label", {}, "HA", el("input", { type: "checkbox", name: "ha" })),
    el("button", { type: "submit", class: "create-app" }, "Create"));
    out.append(form);
  }
  out.append(el("form", { id: "create-domain", onsubmit: (ev) => {
    ev.preventDefault();
    act(() => call("POST", "domains", { name: new FormData(ev.target).get("name") }));
  } }, el("label", {}, "New domain", el("input", { name: "name", required: true, pattern: "[a-z0-9]{1,16}" })),
  el("button", { type: "submit" }, "Create domain")));
  return out;
}

async function appView(ns, name) {
  const base = "domains/" + encodeURIComponent(ns) + "/applications/" + encodeURIComponent(name);
  const [a, deps, ro] = await Promise.all([call("GET", base + "?include=gears"), call("GET", base + "/deployments"),
    call("GET", base + "/rollout")]);
  const lb = a.load_balancers;
  let haText = a.ha ? "yes" : "no";
  if (a.ha && lb && lb.ha_effective !== undefined) haText += lb.ha_effective ? ", effective" : ", not yet effective: " + (lb.ha_pending || "");
  const event = (ev) => () => act(() => call("POST", base + "/events", { event: ev }));
  const out = el("div", { id: "app-view", "data-app": name },
    el("h2", {}, name + " (" + ns + ")"),
    table(["", ""], [
      el("tr", {}, el("td", {}, "URL"), el("td", {}, a.app_url)),
      el("tr", {}, el("td", {}, "State"), el("td", { id: "app-state" }, a.state)),
      el("tr", {}, el("td", {}, "Gears"), el("td", { id: "app-gear-count" }, a.gear_count)),
      el("tr", {}, el("td", {}, "HA"), el("td", { id: "app-ha" }, haText)),
      lb ? el("tr", {}, el("td", {}, "Load balancers"), el("td", { id: "app-lb" },
        lb.gears + " LB gears on " + lb.nodes + " nodes in " + lb.zones + " zones")) : null,
      el("tr", {}, el("td", {}, "Aliases"), el("td", {}, (a.aliases || []).join(", ") || "none")),
    ]),
    el("div", { class: "actions" },
      ["start", "stop", "restart", "scale-up", "scale-down", "make-ha", "disable-ha"].map((ev) =>
        el("button", { type: "button", id: "event-" + ev, onclick: event(ev) }, ev))),
    el("h3", {}, "Gears"),
    table(["Gear", "State", "Node", "Zone", "LB"], (a.gears || []).map((g) => el("tr", {},
      el("td", {}, g.id), el("td", { class: "gear-state" }, g.state + (g.reason ? " (" + g.reason + ")" : "")),
      el("td", {}, g.node), el("td", {}, g.zone || ""), el("td", {}, g.lb ? (g.head ? "head" : "yes") : "")))),
    el("h3", {}, "Deployments"),
    el("p", { id: "rollout" }, ro && ro.deployment ? "Roll-out of " + ro.deployment.slice(0, 12) + ": " + ro.state +
      ", " + ro.done + " of " + ro.total + " gears; " + ro.message : "No deployment yet."),
    table(["Deployment", "Created", "By", ""], (deps || []).map((d) => el("tr", {},
      el("td", {}, d.id.slice(0, 12) + (d.current ? " (current)" : "")), el("td", {}, d.created_at), el("td", {}, d.created_by),
      el("td", {}, d.current ? "" : el("button", { type: "button", onclick: () => act(() =>
        call("POST", base + "/events", { event: "activate", deployment_id: d.id })) }, "activate"))))),
    el("form", { id: "deploy-form", onsubmit: (ev) => {
      ev.preventDefault();
      const file = ev.target.querySelector("input[type=file]").files[0];
      if (file) act(() => call("POST", base + "/deployments", file, "application/gzip"));
    } }, el("label", {}, "Deploy a .tar.gz", el("input", { type: "file", id: "deploy-file", accept: ".gz,.tgz,application/gzip" })),
    el("button", { type: "submit", id: "deploy-submit" }, "Deploy")),
    el("form", { id: "alias-form", onsubmit: (ev) => {
      ev.preventDefault();
      act(() => call("POST", base + "/aliases", { id: new FormData(ev.target).get("alias") }));
    } }, el("label", {}, "Add an alias", el("input", { name: "alias", required: true })), el("button", { type: "submit" }, "Add")),
    el("h3", {}, "Log"),
    el("pre", { id: "log" }));
  followLog(base, out.querySelector("#log"));
  return out;
}

// followLog appends the app's log lines to pre as they come.
async function followLog(base, pre) {
  const ctrl = new AbortController();
  logStream = ctrl;
  try {
    const resp = await fetch(API + "/" + base + "/logs?tail=50&follow=true", { signal: ctrl.signal, credentials: "same-origin",
      headers: { "X-Gearbox-Console": "1" } });
    if (!resp.ok || !resp.body) return;
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pre.append(dec.decode(value, { stream: true }));
      pre.scrollTop = pre.scrollHeight;
    }
  } catch (e) { /* aborted, or the broker went */ }
}

async function alertsView() {
  const alerts = (await call("GET", "alerts")) || [];
  return el("div", { id: "alerts-view" }, el("h2", {}, "Alerts"),
    table(["Time", "Kind", "Application", "Node", "What happened", "What gearbox did"], alerts.slice().reverse().map((a) =>
      el("tr", {}, el("td", {}, a.time), el("td", {}, a.kind), el("td", {}, a.app_name ? a.app_name + " (" + a.namespace + ")" : ""),
        el("td", {}, a.node || ""), el("td", {}, a.reason), el("td", {}, a.action || "")))));
}

async function nodesView() {
  const nodes = (await call("GET", "nodes")) || [];
  return el("div", { id: "nodes-view" }, el("h2", {}, "Nodes"),
    table(["Node", "Address", "Zone", "Alive", "Gears", "Draining", ""], nodes.map((n) => el("tr", {},
      el("td", {}, n.name), el("td", {}, n.addr), el("td", {}, n.zone || ""), el("td", {}, n.alive ? "yes" : "no"),
      el("td", {}, n.gears + " of " + n.max_gears), el("td", {}, n.draining ? "yes" + (n.evacuation ? " (" + n.evacuation + ")" : "") : "no"),
      el("td", { class: "actions" },
        el("button", { type: "button", onclick: () => act(() => call("POST", "nodes/" + encodeURIComponent(n.name) + "/events",
          { event: n.draining ? "undrain" : "drain" })) }, n.draining ? "undrain" : "drain"),
        n.alive ? null : el("button", { type: "button", onclick: () => {
          if (confirm("Remove node " + n.name + " for good?")) act(() => call("DELETE", "nodes/" + encodeURIComponent(n.name)));
        } }, "remove"))))));
}

async function usersView() {
  const users = (await call("GET", "users")) || [];
  return el("div", { id: "users-view" }, el("h2", {}, "Users"),
    table(["Login", "Admin", "Gears used", "Created"], users.map((u) => el("tr", {},
      el("td", {}, u.login), el("td", {}, u.admin ? "yes" : "no"), el("td", {}, u.consumed_gears), el("td", {}, u.created_at)))));
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  window.addEventListener("hashchange", route);
  route();
});
