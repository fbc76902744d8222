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
      context.announce(`${payer.rawPayerName} now maps to ${canonical.value.trim()}; later uploads use it.`);
      context.refresh();
    } catch (problem) {
      message.replaceChildren(errorBox(problem));
    }
  });
  return form;
}

async function list(context) {
  const { api } = context;
  const [summaries, unmapped] = await Promise.all([
    api.list("/payerSummaries", "payerSummaries", { orderBy: "current.claims desc" }, 1000),
    api.list("/payers", "payers", { filter: "mapped = false" }, 200),
  ]);
  return h(
    "section",
    { "aria-labelledby": "payers-title" },
    h("h1", { id: "payers-title" }, "Payers"),
    table(
      "Each payer's current window against its baseline",
      ["Payer", "Claims", "Denial rate", "Days to decision", "Paid ÷ allowed", "Denied billed", "Open events"],
      summaries.map((summary) => [
        summaryLink(summary),
        count(summary.current?.claims),
        `${percent(summary.current?.denialRate)} (was ${percent(summary.baseline?.denialRate)})`,
        `${Number(summary.current?.medianDecisionDays || 0).toFixed(1)} (was ${Number(summary.baseline?.medianDecisionDays || 0).toFixed(1)})`,
        `${percent(summary.current?.paidToAllowedRatio)} (was ${percent(summary.baseline?.paidToAllowedRatio)})`,
        money(summary.current?.deniedBilledAmount),
        count(summary.openEventCount),
      ]),
      "No payer yet: upload claims first.",
    ),
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
