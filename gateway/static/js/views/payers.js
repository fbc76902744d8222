// Payers: each payer's current window against its baseline; one payer's weekly denial
// rate, days to decision and payment ratio against the baseline band; the payer names in
// files that no mapping or directory entry recognised, and mapping them.

import { metricChart, METRICS } from "../chart.js";
import { count, day, dayRange, errorBox, field, h, money, percent, quoted, table } from "../dom.js";

function summaryLink(summary) {
  const link = h("a", { href: `#/payers/${encodeURIComponent(summary.payer)}` }, summary.payer);
  return summary.selfPay ? h("span", {}, link, " (self-pay: not compared)") : link;
}

const SELF_PAY_NOTICE =
  "Self-pay: these claims are the patients' own, not an insurer's. They are counted here, but detection does not compare them: what patients pay is no payer's drift.";

function mappingForm(context, payer) {
  const { api } = context;
  const canonical = h("input", { name: "canonicalPayer", type: "text", required: true, list: "canonical-names", autocomplete: "off" });
  const message = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "inline-form", "aria-label": `Map ${payer.rawPayerName}` },
    field(`Canonical payer for “${payer.rawPayerName}”`, canonical),
    h("button", { type: "submit" }, "Map"),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api.post("/payerMappings", {
        rawPayerName: payer.rawPayerName,
        rawPayerId: payer.rawPayerId || "",
        canonicalPayer: canonical.value.trim(),
      });
      // The mapping moves the name's claims at once, and later files' with them.
      context.announce(`${payer.rawPayerName} now maps to ${canonical.value.trim()}: its claims moved there, and detection runs again with them.`);
      context.refresh();
    } catch (problem) {
      message.replaceChildren(errorBox(problem));
    }
  });
  return form;
}

// The payers with claims but none in the summaries' windows (which end on the customer's
// latest decision date: a later file of some payers moves them past the others' claims),
// with their open events, which stay open until a run can compare them again.
function earlierPayers(summaries, every, open) {
  const shown = new Set(summaries.map((summary) => summary.payer));
  const claims = new Map();
  for (const payer of every) {
    const name = payer.canonicalPayer || payer.rawPayerName;
    if (!shown.has(name)) claims.set(name, (claims.get(name) || 0) + Number(payer.claimCount || 0));
  }
  const events = new Map();
  for (const event of open) if (claims.has(event.payer)) events.set(event.payer, (events.get(event.payer) || 0) + 1);
  const earlier = [...claims].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (!earlier.length) return null;
  return [
    h("h2", { id: "earlier-title" }, "Payers without claims decided in these windows"),
    h(
      "p",
      { class: "hint" },
      "Their claims were decided before the windows above, which end on the latest decision date in your files, or are not decided yet. Their open events stay open, not tested, until a run can compare them again: upload their later claims.",
    ),
    table(
      "Payers with no claims decided in these windows",
      ["Payer", "Claims", "Open events"],
      earlier.map(([payer, n]) => [
        payer,
        count(n),
        events.get(payer) ? h("a", { href: `#/events?payer=${encodeURIComponent(payer)}` }, count(events.get(payer))) : count(0),
      ]),
    ),
  ];
}

const days = (value) => Number(value || 0).toFixed(1);

// A metric of the current window against the baseline's; a window without decided claims
// has no value (the API's 0 then means nothing; the claims column says which it was).
function moved(summary, field, format) {
  const { current, baseline } = summary;
  if (!Number(current?.claims)) return "—";
  const now = format(current[field]);
  return Number(baseline?.claims) ? `${now} (was ${format(baseline[field])})` : now;
}

async function list(context) {
  const { api } = context;
  const [summaries, every, open] = await Promise.all([
    api.list("/payerSummaries", "payerSummaries", { orderBy: "current.claims desc" }, 1000),
    api.list("/payers", "payers", {}, 5000),
    api.list("/driftEvents", "driftEvents", { filter: "active = true AND (state = NEW OR state = ACKNOWLEDGED)" }, 1000),
  ]);
  const unmapped = every.filter((payer) => !payer.mapped).slice(0, 200);
  const window = summaries[0];
  return h(
    "section",
    { "aria-labelledby": "payers-title" },
    h("h1", { id: "payers-title" }, "Payers"),
    table(
      window
        ? `Each payer's current window against its baseline (${dayRange(window.currentWindow)} against ${dayRange(window.baselineWindow)})`
        : "Each payer's current window against its baseline",
      ["Payer", "Claims", "Denial rate", "Days to decision", "Paid ÷ allowed", "Denied billed", "Open events"],
      summaries.map((summary) => [
        summaryLink(summary),
        Number(summary.baseline?.claims) ? count(summary.current?.claims) : `${count(summary.current?.claims)} (none in the baseline)`,
        moved(summary, "denialRate", percent),
        moved(summary, "medianDecisionDays", days),
        moved(summary, "paidToAllowedRatio", percent),
        money(summary.current?.deniedBilledAmount),
        count(summary.openEventCount),
      ]),
      "No payer yet: upload claims first.",
    ),
    earlierPayers(summaries, every, open),
    h("h2", { id: "unmapped-title" }, "Unmapped payer names"),
    h("p", { class: "hint" }, "Names in files that no mapping or directory entry recognised; claims are kept under the cleaned-up name until mapped."),
    h("datalist", { id: "canonical-names" }, summaries.map((summary) => h("option", { value: summary.payer }))),
    table(
      "Payer names without a mapping",
      ["Name in files", "Payer id", "Claims", "Last seen", ""],
      unmapped.map((payer) => [
        payer.rawPayerName,
        payer.rawPayerId || "—",
        count(payer.claimCount),
        day(payer.lastSeenTime ? { year: +payer.lastSeenTime.slice(0, 4), month: +payer.lastSeenTime.slice(5, 7), day: +payer.lastSeenTime.slice(8, 10) } : null),
        api.identity.canWrite ? mappingForm(context, payer) : "",
      ]),
      "Every payer name is mapped.",
    ),
  );
}

async function detail({ api, path }) {
  const payer = path[0];
  const found = await api.get("/payerSummaries", { filter: `payer = ${quoted(payer)}`, pageSize: 1 });
  const summary = (found.payerSummaries || [])[0];
  if (!summary) {
    return h("section", {}, h("h1", {}, payer), errorBox(new Error(`No claims of ${payer} in the current or baseline window.`)));
  }
  return h(
    "section",
    { "aria-labelledby": "payer-title" },
    h("p", {}, h("a", { href: "#/payers" }, "← Payers")),
    h("h1", { id: "payer-title" }, summary.payer),
    h(
      "p",
      {},
      `Current window ${dayRange(summary.currentWindow)} (${count(summary.current?.claims)} claims) against the baseline ${dayRange(summary.baselineWindow)} (${count(summary.baseline?.claims)} claims). `,
      h("a", { href: `#/events?payer=${encodeURIComponent(summary.payer)}` }, `${count(summary.openEventCount)} open events`),
    ),
    summary.selfPay ? h("p", { class: "notice" }, SELF_PAY_NOTICE) : null,
    summary.detectionStartDate
      ? h("p", { class: "notice" }, `Not enough history yet: detection compares this payer from ${day(summary.detectionStartDate)}.`)
      : null,
    summary.seasonNote ? h("p", { class: "notice" }, summary.seasonNote) : null,
    h("div", { class: "charts" }, Object.keys(METRICS).map((metric) => metricChart(summary, metric))),
  );
}

export function render(context) {
  return context.path.length ? detail(context) : list(context);
}
