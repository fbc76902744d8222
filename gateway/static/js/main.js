// The dashboard: a sign-in, a menu of sections, one view at a time chosen by the URL's hash
// (`#/events/ev_1`), so every view has an address that survives a reload.

import { Api, forgetToken, savedToken } from "./api.js";
import { errorBox, field, h } from "./dom.js";
import * as events from "./views/events.js";
import * as overview from "./views/overview.js";
import * as payers from "./views/payers.js";
import * as reports from "./views/reports.js";
import * as runs from "./views/runs.js";
import * as settings from "./views/settings.js";
import * as uploads from "./views/uploads.js";
import * as webhooks from "./views/webhooks.js";

const VIEWS = { overview, uploads, events, runs, payers, reports, webhooks, settings };
const main = document.getElementById("main");
const statusRegion = document.getElementById("status");
let api = null;
let shown = 0;

function announce(message) {
  statusRegion.textContent = message;
}

function signIn(problem) {
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  const token = h("textarea", { name: "token", rows: 4, required: true, autocomplete: "off", spellcheck: "false" });
  const form = h(
    "form",
    { class: "card sign-in", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("p", {}, "Paste a bearer token (locally, `make token` prints one)."),
    field("Bearer token", token),
    problem ? errorBox(problem) : null,
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    start(token.value.trim(), true);
  });
  main.replaceChildren(form);
  token.focus();
}

function start(token, fresh) {
  try {
    api = new Api(token);
  } catch (problem) {
    forgetToken();
    signIn(problem);
    return;
  }
  api.remember();
  const who = document.getElementById("who");
  who.replaceChildren(
    h("span", {}, `${api.identity.customer} · ${api.identity.role}`),
    h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"),
  );
  who.hidden = false;
  document.getElementById("nav").hidden = false;
  if (fresh && location.hash && location.hash !== "#/overview") show();
  else if (location.hash !== "#/overview") location.hash = "#/overview";
  else show();
}

function signOut() {
  forgetToken();
  api = null;
  signIn();
}

// The view the hash names, with the rest of the hash as its path (`#/events/ev_1`).
async function show() {
  if (!api) return;
  const [route, search] = location.hash.replace(/^#\/?/, "").split("?");
  const [section, ...rest] = route.split("/");
  const view = VIEWS[section] || overview;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === `#/${section}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const number = ++shown;
  main.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  main.setAttribute("aria-busy", "true");
  const context = {
    api,
    path: rest.map(decodeURIComponent),
    query: new URLSearchParams(search || ""),
    announce,
    refresh: () => number === shown && show(),
    current: () => number === shown,
  };
  let content;
  try {
    content = await view.render(context);
  } catch (problem) {
    if (problem.status === 401) {
      forgetToken();
      signIn(problem);
      return;
    }
    content = h("section", {}, h("h1", {}, "Something went wrong"), errorBox(problem));
  }
  if (number !== shown) return;
  main.removeAttribute("aria-busy");
  main.replaceChildren(content);
  const heading = main.querySelector("h1");
  document.title = heading ? `${heading.textContent} · Upstream` : "Upstream";
}

window.addEventListener("hashchange", () => {
  show().then(() => main.focus({ preventScroll: true }));
});

const token = savedToken();
if (token) start(token, true);
else signIn();
