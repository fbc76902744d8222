// Detection runs, newest first: what started each, the day it ran as of, what it tested and
// found, how long it took, and why one failed. Writers start one (as of the latest decision
// date in the files, or a day they choose) and follow it to its end.

import { badge, count, dateOf, day, dayRange, errorBox, field, followed, h, isoDay, quoted, submitting, table, time } from "../dom.js";

// Runs the list shows.
const SHOWN = 50;
// Seconds an upload's page looks for the run the upload started before saying it has none.
const RUN_LOOKS = 30;

// What changed the data, as ingest names it in the run's request id
// (`upload-deleted:u_1:…`, `payer-mapping:pm_1:…`, `retention:2023-12-01:…`).
const DATA_CHANGES = {
  "upload-deleted": (upload) => `An upload deleted (${upload})`,
  "payer-mapping": (mapping) => `A payer mapping changed (${mapping})`,
  retention: (before) => `Retention removed the claims decided before ${day(dateOf(before))}`,
};

function startedBy(run) {
  if (run.trigger === "UPLOAD") {
    return run.requestId ? h("a", { href: `#/uploads/${encodeURIComponent(run.requestId)}` }, "An upload") : "An upload";
  }
  if (run.trigger === "DATA_CHANGE") {
    const [change, id] = (run.requestId || "").split(":");
    return DATA_CHANGES[change] && id ? DATA_CHANGES[change](id) : "A change to the data";
  }
  return run.trigger === "SCHEDULE" ? "A schedule" : "By hand";
}

// A proto3 JSON Duration (`"0.077489s"`) in seconds, to a tenth.
function seconds(duration) {
  return duration ? `${Number.parseFloat(duration).toFixed(1)}\u00a0s` : "—";
}

function stateOf(run) {
  if (run.state !== "FAILED") return badge(run.state);
  return h("span", {}, badge(run.state), " ", h("span", { class: "hint", "data-testid": "run-error" }, run.error?.message || "no reason given"));
}

// What a finished run did to the events.
export function foundText(run) {
  const untested = Number(run.eventsUntested || 0);
  const left = untested ? `, ${count(untested)} not tested` : "";
  return `${count(run.eventsOpened)} events opened, ${count(run.eventsUpdated)} updated, ${count(run.eventsClosed)} closed${left}`;
}

function runsTable(runs) {
  return table(
    "Detection runs, newest first",
    ["Requested", "Started by", "As of", "Compared", "State", "Cells tested", "Events", "Took"],
    runs.map((run) => [
      time(run.createTime),
      startedBy(run),
      day(run.asOf),
      `${dayRange(run.currentWindow)} against ${dayRange(run.baselineWindow)}`,
      stateOf(run),
      run.state === "SUCCEEDED" ? `${count(run.cellsTested)} (${count(run.cellsSkipped)} skipped)` : "—",
      run.state === "SUCCEEDED" ? foundText(run) : "—",
      seconds(run.duration),
    ]),
    "No detection run yet: one starts after each upload.",
  );
}

function progressOf(run) {
  if (run.state === "SUCCEEDED") return h("p", {}, badge(run.state), ` As of ${day(run.asOf)}: ${count(run.cellsTested)} cells tested; ${foundText(run)}.`);
  if (run.state === "FAILED") {
    return h("div", { class: "error", role: "alert" }, h("p", {}, `The run as of ${day(run.asOf)} failed: ${run.error?.message || "no reason given"}`));
  }
  return h("p", {}, badge(run.state), ` Detecting as of ${day(run.asOf)}… `, h("progress", { "aria-label": "Detection run in progress" }));
}

// What detection made of an upload: its run (started by ingest once the upload is in) found,
// followed to its end, and said — the events it opened, updated and closed, or why it failed.
export function uploadRun(context, uploadId) {
  const said = h("span", { "data-testid": "upload-run" }, "Waiting for its detection run to start…");
  const say = (run) => {
    const asOf = `Detection run as of ${day(run.asOf)}`;
    if (run.state === "SUCCEEDED") {
      said.replaceChildren(`${asOf}: ${foundText(run)}. `, h("a", { href: "#/events" }, "See the drift events"));
    } else if (run.state === "FAILED") {
      said.replaceChildren(`${asOf} failed: ${run.error?.message || "no reason given"}`);
    } else {
      said.replaceChildren(`${asOf}: ${run.state === "PENDING" ? "waiting to start" : "running"}…`);
    }
  };
  (async () => {
    try {
      const run = await runStarted(context, { filter: `request_id = ${quoted(uploadId)}` }, () => true);
      if (run) {
        await followed(context, run, say);
      } else if (context.current()) {
        said.replaceChildren("No detection run has started for it yet: see ", h("a", { href: "#/runs" }, "the detection runs"), ".");
      }
    } catch (problem) {
      said.replaceChildren(errorBox(problem));
    }
  })();
  return said;
}

// The run the deletion of an upload started (its request id `upload-deleted:{upload}:…`),
// once it has; null if none does within RUN_LOOKS seconds.
export function deletionRun(context, uploadId) {
  const prefix = `upload-deleted:${uploadId}:`;
  return runStarted(context, { filter: "trigger = DATA_CHANGE", pageSize: 10 }, (run) => (run.requestId || "").startsWith(prefix));
}

// The newest run of those `query` lists that `wanted` takes, looked for each second while
// the page is shown (ingest's outbox asks for it just after its change commits).
async function runStarted(context, query, wanted) {
  for (let look = 0; look < RUN_LOOKS && context.current(); look += 1) {
    const found = await context.api.get("/driftRuns", { pageSize: 1, ...query });
    const run = (found.driftRuns || []).find(wanted);
    if (run) return run;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return null;
}

function runForm(context, reload) {
  const { api } = context;
  const asOf = h("input", { type: "date", name: "asOf", max: isoDay(new Date()) });
  const button = h("button", { type: "submit" }, "Run detection");
  const problems = h("div");
  const area = h("div", { class: "outcome", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "new-run" },
    h("h2", { id: "new-run" }, "Run detection now"),
    h(
      "p",
      { class: "hint" },
      "A run starts by itself after each upload. Run one now to see what changed drift settings find, or the drift as of an earlier day.",
    ),
    field("As of", asOf, "The last day of the current window; left empty, the latest decision date in your files"),
    button,
    problems,
    area,
  );
  submitting(form, button, problems, area, async () => {
    // One key a click: a request sent again (a lost answer) starts no second run.
    const body = { requestId: crypto.randomUUID() };
    if (asOf.value) body.asOf = dateOf(asOf.value);
    const run = await api.post("/driftRuns", body);
    reload();
    const done = await followed(context, run, (now) => area.replaceChildren(progressOf(now)));
    if (!done) return;
    context.announce(
      done.state === "SUCCEEDED" ? `Detection run finished: ${foundText(done)}.` : "The detection run failed.",
    );
    reload();
  });
  return form;
}

export async function render(context) {
  const { api } = context;
  const list = h("div", {}, runsTable(await api.list("/driftRuns", "driftRuns", {}, SHOWN)));
  const reload = async () => {
    try {
      const runs = await api.list("/driftRuns", "driftRuns", {}, SHOWN);
      if (context.current()) list.replaceChildren(runsTable(runs));
    } catch (problem) {
      list.replaceChildren(errorBox(problem));
    }
  };
  return h(
    "section",
    { "aria-labelledby": "runs-title" },
    h("h1", { id: "runs-title" }, "Detection runs"),
    api.identity.canWrite ? runForm(context, reload) : null,
    list,
  );
}
