// Elements built from data, never from HTML strings: a payer name is text, whatever it holds.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(key, "");
    else element.setAttribute(key, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

let uniqueCount = 0;
export function uniqueId(prefix) {
  uniqueCount += 1;
  return `${prefix}-${uniqueCount}`;
}

// A labelled form control: the label names it for a screen reader and for a click.
export function field(label, control, hint) {
  control.id = control.id || uniqueId("field");
  const parts = [h("label", { for: control.id }, label), control];
  if (hint) {
    const hintId = uniqueId("hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("small", { id: hintId, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

export function select(name, options, value) {
  return h(
    "select",
    { name },
    options.map(([optionValue, text]) =>
      h("option", { value: optionValue, selected: optionValue === value }, text),
    ),
  );
}

// A table with a caption (read first by screen readers) and one row per item.
export function table(caption, headings, rows, empty = "Nothing here yet.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      { class: "stack" },
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
      h(
        "tbody",
        {},
        // Each cell names its column, so on a narrow screen a row reads as a card.
        rows.map((cells) => h("tr", {}, cells.map((cell, index) => h("td", { "data-label": headings[index] }, cell)))),
      ),
    ),
  );
}

export function badge(text, kind) {
  return h("span", { class: `badge badge-${String(kind || text).toLowerCase()}` }, words(text));
}

// ENUM_NAMES as words: "ACKNOWLEDGED" → "acknowledged", "DENIAL_RATE" → "denial rate".
export function words(name) {
  return String(name || "").toLowerCase().replace(/_/g, " ");
}

// Procedure-code groups (a claim's `codeGroup`) as people say them; runtime/code_groups.py
// says them the same way in summaries and alerts.
const GROUP_WORDS = {
  EVALUATION_MANAGEMENT: "evaluation and management",
  SUPPLIES_TRANSPORT: "supplies and transport",
  ENTERAL_PARENTERAL: "enteral and parenteral therapy",
  ORTHOTICS_PROSTHETICS: "orthotics and prosthetics",
  PROCEDURES_SERVICES: "HCPCS procedures and services",
  TEMPORARY_CODES: "HCPCS temporary codes",
  HCPCS_OTHER: "other HCPCS",
  CPT_CATEGORY_II_III: "CPT category II and III",
};
// Every group but the revenue codes' (REVENUE_04: "revenue code 04xx").
export const CODE_GROUPS = [
  "ANESTHESIA", "SURGERY", "RADIOLOGY", "LABORATORY", "MEDICINE", "EVALUATION_MANAGEMENT",
  "SUPPLIES_TRANSPORT", "ENTERAL_PARENTERAL", "DURABLE_MEDICAL_EQUIPMENT", "PROCEDURES_SERVICES",
  "DRUGS", "ORTHOTICS_PROSTHETICS", "TEMPORARY_CODES", "HCPCS_OTHER", "CPT_CATEGORY_II_III", "OTHER",
];

export function groupWords(group) {
  if (group.startsWith("REVENUE_")) return `revenue code ${group.slice("REVENUE_".length)}xx`;
  return GROUP_WORDS[group] || words(group);
}

// A code group as typed, in its words or by its name ("evaluation and management",
// "evaluation_management", "revenue code 04xx"), as the group's name.
export function groupNamed(text) {
  const typed = String(text || "").trim().toLowerCase().replace(/\s+/g, " ");
  if (!typed) return "";
  const said = Object.keys(GROUP_WORDS).find((group) => GROUP_WORDS[group].toLowerCase() === typed);
  if (said) return said;
  const revenue = typed.match(/^revenue(?: code)? ?(\d{2})(?:xx)?$/);
  if (revenue) return `REVENUE_${revenue[1]}`;
  return typed.toUpperCase().replace(/ /g, "_");
}

// A google.type.Money as a number of its currency's units.
export function amount(value) {
  return value ? Number(value.units || 0) + Number(value.nanos || 0) / 1e9 : 0;
}

export function money(value) {
  if (!value) return "—";
  return new Intl.NumberFormat("en-US", {
    style: "currency",
    currency: value.currencyCode || "USD",
    maximumFractionDigits: 0,
  }).format(amount(value));
}

export function count(value) {
  return new Intl.NumberFormat("en-US").format(Number(value || 0));
}

export function percent(value, digits = 1) {
  return value === undefined || value === null ? "—" : `${(value * 100).toFixed(digits)} %`;
}

export function day(value) {
  if (!value) return "—";
  const date = new Date(Date.UTC(value.year, value.month - 1, value.day));
  return date.toLocaleDateString("en-US", { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" });
}

// An open event no run could test since (see DriftEvent.untested_since), said beside it.
export function untested(event) {
  return event.untestedSince
    ? h("span", { class: "hint", "data-testid": "untested" }, `not tested since ${day(event.untestedSince)}`)
    : null;
}

// `2026-02-15` (a date input's value) as the API's google.type.Date, and a Date as that text.
export function dateOf(value) {
  const [year, month, day] = value.split("-").map(Number);
  return { year, month, day };
}

export function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

export function dayRange(range) {
  return range ? `${day(range.startDate)} – ${day(range.endDate)}` : "—";
}

export function time(value) {
  if (!value) return "—";
  return new Date(value).toLocaleString("en-US", {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

export function bytes(value) {
  const size = Number(value || 0);
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}

// The last part of a resource name: `customers/acme/uploads/u_1` → `u_1`.
export function idOf(name) {
  return String(name || "").split("/").pop();
}

// What went wrong, said where it went wrong: the problem's detail and each field named.
export function errorBox(error) {
  const box = h("div", { class: "error", role: "alert" }, h("p", {}, error.message));
  if (error.violations && error.violations.length) {
    box.append(
      h(
        "ul",
        {},
        error.violations.map((violation) => h("li", {}, `${violation.field}: ${violation.description}`)),
      ),
    );
  }
  if (error.requestId) box.append(h("p", { class: "hint" }, `Request ${error.requestId}`));
  return box;
}

// A string in an AIP-160 filter: quoted, its quotes and backslashes escaped.
export function quoted(text) {
  return `"${String(text).replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

// A change refused for a stale etag: said as such, with a way to see what is there now.
export function conflictBox(text, reloadLabel, reload) {
  return h(
    "div",
    { class: "error conflict", role: "alert" },
    h("p", {}, text),
    h("button", { type: "button", onclick: reload }, reloadLabel),
  );
}

// Deleting asks twice, by a second button rather than window.confirm: the first click offers it.
export function twoStep(label, what, action) {
  const box = h("span", { class: "buttons" });
  const ask = h("button", { type: "button", class: "secondary", "aria-label": `${label} ${what}` }, label);
  ask.addEventListener("click", () => {
    const yes = h(
      "button",
      { type: "button", class: "danger", "aria-label": `Yes, ${label.toLowerCase()} ${what}`, onclick: action },
      `Yes, ${label.toLowerCase()}`,
    );
    const no = h("button", { type: "button", class: "secondary", "aria-label": `Keep ${what}` }, "Keep");
    no.addEventListener("click", () => {
      box.replaceChildren(ask);
      ask.focus();
    });
    box.replaceChildren(yes, " ", no);
    yes.focus();
  });
  box.append(ask);
  return box;
}

// The IANA time zones the browser knows, UTC first, for a time-zone field's suggestions.
export function timeZoneList() {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  return h(
    "datalist",
    { id: uniqueId("zones") },
    ["UTC", ...zones.filter((zone) => zone !== "UTC")].map((zone) => h("option", { value: zone })),
  );
}

const FINISHED = ["SUCCEEDED", "FAILED"];

// A report or a run asked for again each second until it has SUCCEEDED or FAILED, while its
// view is shown, `shown(it)` on each new state: the last one read, or null once the view is
// left.
export async function followed(context, resource, shown) {
  let state = "";
  for (;;) {
    if (resource.state !== state) {
      state = resource.state;
      shown(resource);
    }
    if (FINISHED.includes(resource.state)) return resource;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (!context.current()) return null;
    resource = await context.api.get(context.api.named(resource.name));
  }
}

// A form's submit, one at a time: its button disabled meanwhile, the last outcome (`area`) and
// problem cleared first, and what goes wrong in `action` shown in `problems`.
export function submitting(form, button, problems, area, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    button.disabled = true;
    problems.replaceChildren();
    area.replaceChildren();
    try {
      await action();
    } catch (problem) {
      problems.replaceChildren(errorBox(problem));
    } finally {
      button.disabled = false;
    }
  });
}
