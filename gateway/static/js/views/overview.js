// Open drift events by severity with the dollars at stake, the last upload and the last run.

import { amount, badge, count, day, dayRange, h, idOf, money, table, time, untested, words } from "../dom.js";
import { foundText } from "./runs.js";
import { stateWithWarnings } from "./uploads.js";

const SEVERITIES = ["HIGH", "MEDIUM", "LOW"];

function dollars(events) {
  const total = events.reduce((sum, event) => sum + amount(event.dollarsAtStake), 0);
  return money({ currencyCode: "USD", units: Math.round(total), nanos: 0 });
}

export async function render({ api }) {
  const [open, uploads, runs] = await Promise.all([
    api.list("/driftEvents", "driftEvents", { filter: "active = true", orderBy: "dollars_at_stake desc" }),
    api.get("/uploads", { pageSize: 1 }),
    api.get("/driftRuns", { pageSize: 1 }),
  ]);
  const lastUpload = (uploads.uploads || [])[0];
  const lastRun = (runs.driftRuns || [])[0];
  // The last upload moved the windows past some payers' claims: detection cannot test them.
  const behind = (lastUpload?.warnings || []).find((warning) => warning.code === "OTHER_PAYERS_BEHIND");

  const tiles = SEVERITIES.map((severity) => {
    const some = open.filter((event) => event.severity === severity);
    return h(
      "a",
      { class: `tile tile-${severity.toLowerCase()}`, href: `#/events?severity=${severity}` },
      h("span", { class: "tile-count" }, count(some.length)),
      h("span", { class: "tile-label" }, `${words(severity)} severity open`),
      h("span", { class: "tile-money" }, `${dollars(some)} at stake`),
    );
  });

  return h(
    "section",
    { "aria-labelledby": "overview-title" },
    h("h1", { id: "overview-title" }, "Overview"),
    h("div", { class: "tiles" }, tiles),
    h(
      "div",
      { class: "grid-2" },
      h(
        "article",
        { class: "card", "aria-labelledby": "last-upload" },
        h("h2", { id: "last-upload" }, "Last upload"),
        lastUpload
          ? h(
              "dl",
              {},
              h("dt", {}, "File"),
              h("dd", {}, h("a", { href: `#/uploads/${idOf(lastUpload.name)}` }, lastUpload.fileName || idOf(lastUpload.name))),
              h("dt", {}, "State"),
              h("dd", {}, stateWithWarnings(lastUpload)),
              h("dt", {}, "Rows"),
              h("dd", {}, `${count(lastUpload.rowsAccepted)} accepted, ${count(lastUpload.rowsRejected)} rejected`),
              h("dt", {}, "Decisions"),
              h("dd", {}, `${day(lastUpload.firstDecisionDate)} – ${day(lastUpload.lastDecisionDate)}`),
              h("dt", {}, "Uploaded"),
              h("dd", {}, time(lastUpload.createTime)),
              behind ? [h("dt", {}, "Payers behind"), h("dd", { "data-testid": "payers-behind" }, behind.message)] : null,
            )
          : h("p", {}, "No upload yet. ", h("a", { href: "#/uploads" }, "Upload claims")),
      ),
      h(
        "article",
        { class: "card", "aria-labelledby": "last-run" },
        h("h2", { id: "last-run" }, "Last detection run"),
        lastRun
          ? h(
              "dl",
              {},
              h("dt", {}, "State"),
              h("dd", {}, badge(lastRun.state)),
              h("dt", {}, "As of"),
              h("dd", {}, day(lastRun.asOf)),
              h("dt", {}, "Compared"),
              h("dd", {}, `${dayRange(lastRun.currentWindow)} against ${dayRange(lastRun.baselineWindow)}`),
              h("dt", {}, "Cells"),
              h("dd", {}, `${count(lastRun.cellsTested)} tested, ${count(lastRun.cellsSkipped)} skipped`),
              h("dt", {}, "Events"),
              h("dd", {}, foundText(lastRun)),
              lastRun.state === "FAILED" ? [h("dt", {}, "Why it failed"), h("dd", { "data-testid": "run-error" }, lastRun.error?.message || "no reason given")] : null,
              h("dt", {}, "Finished"),
              h("dd", {}, time(lastRun.endTime)),
            )
          : h("p", {}, "No detection run yet: one starts after each upload."),
        h("p", {}, h("a", { href: "#/runs" }, "All detection runs")),
      ),
    ),
    h("h2", {}, "Largest open events"),
    table(
      "Open drift events with the most dollars at stake",
      ["Payer", "Metric", "Severity", "At stake", "Summary"],
      open.slice(0, 5).map((event) => [
        h("a", { href: `#/events/${idOf(event.name)}` }, event.payer),
        words(event.metric),
        badge(event.severity),
        money(event.dollarsAtStake),
        h("span", {}, event.summary, untested(event)),
      ]),
      "No open drift events.",
    ),
  );
}
