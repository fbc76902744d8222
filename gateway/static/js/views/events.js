// Drift events: filtered by payer, code group, metric, state and severity; one event's
// evidence (baseline against current, the weekly chart) and its triage, where a change made
// meanwhile by someone else is shown as such instead of being overwritten.

import { eventChart, eventWeeks } from "../chart.js";
import { amount, badge, CODE_GROUPS, conflictBox, count, day, dayRange, errorBox, field, groupNamed, groupWords, h, idOf, money, quoted, select, table, time, untested, words } from "../dom.js";

const METRIC_OPTIONS = [["", "Any metric"], ...["DENIAL_RATE", "DECISION_DAYS", "PAYMENT_RATIO", "DENIAL_REASON_MIX"].map((m) => [m, words(m)])];
const STATE_OPTIONS = [["", "Open"], ["ALL", "Any state"], ...["NEW", "ACKNOWLEDGED", "RESOLVED", "DISMISSED"].map((s) => [s, words(s)])];
const SEVERITY_OPTIONS = [["", "Any severity"], ...["HIGH", "MEDIUM", "LOW"].map((s) => [s, words(s)])];
const TRIAGE = [
  ["ACKNOWLEDGED", "Acknowledge"],
  ["RESOLVED", "Resolve"],
  ["DISMISSED", "Dismiss"],
];

// The form's choices as an AIP-160 filter.
export function filterOf(query) {
  const terms = [];
  if (query.get("payer")) terms.push(`payer = ${quoted(query.get("payer"))}`);
  // Typed as shown ("evaluation and management"), stored as the group's name.
  const codeGroup = groupNamed(query.get("codeGroup"));
  if (codeGroup) terms.push(`code_group = ${quoted(codeGroup)}`);
  if (query.get("metric")) terms.push(`metric = ${query.get("metric")}`);
  if (query.get("severity")) terms.push(`severity = ${query.get("severity")}`);
  const state = query.get("state") || "";
  if (!state) terms.push("(state = NEW OR state = ACKNOWLEDGED)");
  else if (state !== "ALL") terms.push(`state = ${state}`);
  return terms.join(" AND ");
}

async function list({ api, query }) {
  const payer = h("input", { name: "payer", type: "text", value: query.get("payer") || "", list: "payer-names", autocomplete: "off" });
  const codeGroup = h("input", { name: "codeGroup", type: "text", value: query.get("codeGroup") || "", placeholder: "e.g. laboratory", list: "code-groups", autocomplete: "off" });
  const codeGroups = h("datalist", { id: "code-groups" }, CODE_GROUPS.map((group) => h("option", { value: groupWords(group) })));
  const metric = select("metric", METRIC_OPTIONS, query.get("metric") || "");
  const state = select("state", STATE_OPTIONS, query.get("state") || "");
  const severity = select("severity", SEVERITY_OPTIONS, query.get("severity") || "");
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter drift events" },
    field("Payer", payer),
    field("Code group", codeGroup),
    codeGroups,
    field("Metric", metric),
    field("State", state),
    field("Severity", severity),
    h("button", { type: "submit" }, "Filter"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) chosen.set(key, value);
    location.hash = `#/events?${chosen}`;
  });
  const [events, summaries] = await Promise.all([
    api.list("/driftEvents", "driftEvents", { filter: filterOf(query) }, 500),
    api.list("/payerSummaries", "payerSummaries", {}, 1000),
  ]);
  const rank = { HIGH: 3, MEDIUM: 2, LOW: 1 };
  events.sort((a, b) => (rank[b.severity] || 0) - (rank[a.severity] || 0) || amount(b.dollarsAtStake) - amount(a.dollarsAtStake));
  return h(
    "section",
    { "aria-labelledby": "events-title" },
    h("h1", { id: "events-title" }, "Drift events"),
    form,
    h("datalist", { id: "payer-names" }, summaries.map((summary) => h("option", { value: summary.payer }))),
    table(
      `${count(events.length)} drift events`,
      ["Payer", "Code group", "Metric", "Severity", "State", "At stake", "Last seen"],
      events.map((event) => [
        h("a", { href: `#/events/${idOf(event.name)}` }, event.payer),
        event.codeGroup ? groupWords(event.codeGroup) : "all codes",
        words(event.metric),
        badge(event.severity),
        badge(event.state),
        money(event.dollarsAtStake),
        h("span", {}, time(event.lastSeenTime), untested(event)),
      ]),
      "No drift event matches these filters.",
    ),
  );
}

function evidenceTable(event) {
  const evidence = event.evidence || {};
  const unit = evidence.effectUnit || "";
  const value = (number) =>
    number === undefined ? "—" : event.metric === "DECISION_DAYS" ? `${Number(number).toFixed(1)} days` : `${(Number(number) * 100).toFixed(1)} %`;
  // An interval of a window's value, in the value's terms.
  const within = (interval) => (interval ? `${value(interval.lower)} – ${value(interval.upper)}` : "—");
  const rows = [
    ["Window", dayRange(event.baselineWindow), dayRange(event.currentWindow)],
    ["Decided claims", count(evidence.baselineCount), count(evidence.currentCount)],
    ["Value", value(evidence.baselineValue), value(evidence.currentValue)],
  ];
  const level = (evidence.currentInterval || evidence.baselineInterval)?.level;
  if (level) rows.push([`${Math.round(level * 100)} % interval`, within(evidence.baselineInterval), within(evidence.currentInterval)]);
  return h(
    "div",
    {},
    table("Baseline against current", ["", "Baseline", "Current"], rows),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Change"),
      h("dd", {}, `${Number(evidence.effectSize || 0).toFixed(2)} ${unit}`),
      evidence.effectInterval
        ? [
            h("dt", {}, `Change, ${Math.round(evidence.effectInterval.level * 100)} % interval`),
            h("dd", {}, `${Number(evidence.effectInterval.lower).toFixed(2)} – ${Number(evidence.effectInterval.upper).toFixed(2)} ${unit}`),
          ]
        : null,
      h("dt", {}, "Test"),
      h("dd", {}, evidence.test || "—"),
      h("dt", {}, "p-value (q-value)"),
      h("dd", {}, `${Number(evidence.pValue || 0).toPrecision(2)} (${Number(evidence.qValue || 0).toPrecision(2)})`),
      (evidence.carcCodesMoved || []).length
        ? [
            h("dt", {}, "Denial reasons that moved"),
            h("dd", {}, evidence.carcCodesMoved
                .map((shift) => `${shift.code}: ${(shift.baselineShare * 100).toFixed(1)} % → ${(shift.currentShare * 100).toFixed(1)} %`)
                .join("; ")),
          ]
        : null,
    ),
  );
}

function triageForm(context, event) {
  const { api } = context;
  const note = h("textarea", { name: "note", rows: 3 }, event.triageNote || "");
  const message = h("div", { "aria-live": "polite" });

  async function save(changes, mask) {
    message.replaceChildren();
    try {
      const updated = await api.patch(api.named(event.name), changes, { etag: event.etag, mask });
      context.announce(`Event ${words(updated.state)}.`);
      context.refresh();
    } catch (problem) {
      if (problem.stale) {
        message.replaceChildren(
          conflictBox(
            "Someone changed this event since you opened it, so your change was not saved.",
            "Reload the event",
            () => context.refresh(),
          ),
        );
      } else {
        message.replaceChildren(errorBox(problem));
      }
    }
  }

  const buttons = TRIAGE.filter(([state]) => state !== event.state).map(([state, label]) =>
    h("button", { type: "button", onclick: () => save({ state, triageNote: note.value }, "state,triage_note") }, label),
  );
  return h(
    "form",
    { class: "card triage", "aria-labelledby": "triage-title" },
    h("h2", { id: "triage-title" }, "Triage"),
    field("Note", note, "Kept with the event and shown to everyone who reads it"),
    h(
      "div",
      { class: "buttons" },
      buttons,
      h("button", { type: "button", class: "secondary", onclick: () => save({ triageNote: note.value }, "triage_note") }, "Save note"),
    ),
    message,
  );
}

// Why an episode ended, as its page says it.
const ENDED = {
  NO_LONGER_FOUND: () => "a run compared it again and no longer found the drift",
  CLAIMS_REMOVED: (event) =>
    `none of ${event.payer}'s ${event.codeGroup ? `${groupWords(event.codeGroup)} ` : ""}claims are left (the uploads that held them were deleted, or the payer's name was mapped to another payer), so nothing is left to show a drift`,
};

async function detail(context) {
  const { api, path } = context;
  const event = await api.get(api.named(`${api.base.slice(4)}/driftEvents/${path[0]}`));
  const series = event.baselineWindow && event.currentWindow
    ? (await api.stream("/dailyStatSeries", eventWeeks(event).query)).flatMap((message) => message.dailyStatSeries || [])
    : null;
  const cell = `${event.payer}${event.codeGroup ? `, ${groupWords(event.codeGroup)}` : ""}`;
  return h(
    "section",
    { "aria-labelledby": "event-title" },
    h("p", {}, h("a", { href: "#/events" }, "← Drift events")),
    h("h1", { id: "event-title" }, `${event.payer}: ${words(event.metric)}${event.codeGroup ? `, ${groupWords(event.codeGroup)}` : ""}`),
    h("p", { class: "summary" }, event.summary),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "State"),
      h("dd", { "data-testid": "event-state" }, badge(event.state)),
      h("dt", {}, "Severity"),
      h("dd", {}, badge(event.severity)),
      h("dt", {}, "At stake"),
      h("dd", {}, money(event.dollarsAtStake)),
      h("dt", {}, "First detected"),
      h("dd", {}, time(event.firstDetectedTime)),
      h("dt", {}, "Last seen"),
      h("dd", {}, time(event.lastSeenTime)),
      event.active ? null : [h("dt", {}, "Ended"), h("dd", { "data-testid": "event-ended" }, `${time(event.endTime)}: ${(ENDED[event.endReason] || ENDED.NO_LONGER_FOUND)(event)}`)],
      event.untestedSince
        ? [
            h("dt", {}, "Not tested since"),
            h(
              "dd",
              { "data-testid": "untested-since" },
              `${day(event.untestedSince)}: the runs as of that day and since could not compare it (too few decided claims of the cell in their windows, or none). Nothing says the drift ended; no run has confirmed it since.`,
            ),
          ]
        : null,
      event.triagedBy ? [h("dt", {}, "Triaged by"), h("dd", {}, event.triagedBy)] : null,
      event.triageNote ? [h("dt", {}, "Note"), h("dd", {}, event.triageNote)] : null,
    ),
    h("h2", {}, "Evidence"),
    evidenceTable(event),
    series ? eventChart(event, series, cell) : null,
    api.identity.canWrite ? triageForm(context, event) : null,
  );
}

export function render(context) {
  return context.path.length ? detail(context) : list(context);
}
