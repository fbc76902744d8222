// Reports: one requested (kind, format, period, payers) and followed until it is built, the
// reports kept with their downloads, and the schedules that make reports on their own.

import { ApiError } from "../api.js";
import { badge, bytes, conflictBox, dateOf, dayRange, errorBox, field, followed, h, idOf, isoDay, select, submitting, table, time, timeZoneList, twoStep, uniqueId, words } from "../dom.js";

const KINDS = {
  DRIFT_SUMMARY: ["Drift summary", "Drift events of the period with their evidence and dollars at stake, by payer."],
  PAYER_SCORECARD: ["Payer scorecard", "Per-payer denial rate, days to decision and paid ÷ allowed, with trends."],
  CLAIMS_EXPORT: ["Claims export", "The stored claims decided in the period, one per row."],
  EVENTS_EXPORT: ["Events export", "The drift events of the period, one per row."],
};
// The formats each kind comes in; the server refuses the other combinations.
const FORMATS = {
  DRIFT_SUMMARY: ["PDF", "JSON"],
  PAYER_SCORECARD: ["PDF", "JSON"],
  CLAIMS_EXPORT: ["CSV", "JSON"],
  EVENTS_EXPORT: ["CSV", "JSON"],
};
const DAY_MS = 24 * 60 * 60 * 1000;

function kindName(kind) {
  return (KINDS[kind] || [words(kind)])[0];
}

function describe(report) {
  return `${kindName(report.kind)} (${report.format}), ${dayRange(report.parameters?.dateRange)}`;
}

function lines(text) {
  return text.split("\n").map((line) => line.trim()).filter(Boolean);
}

function payerChoice(payers) {
  const hint = h("small", { class: "hint", id: uniqueId("hint") }, "None checked means all payers.");
  const set = h(
    "fieldset",
    { "aria-describedby": hint.id },
    h("legend", {}, "Payers"),
    payers.map((payer) => h("label", {}, h("input", { type: "checkbox", name: "payer", value: payer }), payer)),
    hint,
  );
  return { element: set, values: () => [...set.querySelectorAll("input:checked")].map((input) => input.value) };
}

// Kind and format, the format's choices following the kind and the kind's hint saying what it holds.
function kindAndFormat() {
  const kind = "DRIFT_SUMMARY";
  const kindSelect = select("kind", Object.entries(KINDS).map(([value, [text]]) => [value, text]), kind);
  const formatSelect = select("format", FORMATS[kind].map((format) => [format, format]), FORMATS[kind][0]);
  const kindField = field("Kind", kindSelect, KINDS[kind][1]);
  kindSelect.addEventListener("change", () => {
    const [chosen, formats] = [formatSelect.value, FORMATS[kindSelect.value]];
    formatSelect.replaceChildren(...formats.map((format) => h("option", { value: format }, format)));
    formatSelect.value = formats.includes(chosen) ? chosen : formats[0];
    kindField.querySelector(".hint").textContent = KINDS[kindSelect.value][1];
  });
  return {
    fields: [kindField, field("Format", formatSelect, "PDF or JSON for summaries and scorecards, CSV or JSON for exports")],
    kind: kindSelect,
    format: formatSelect,
  };
}

// The bearer token cannot ride on a link, so the file is fetched, then saved from memory.
async function download(api, report) {
  const response = await fetch(api.url(`${api.named(report.name)}:download`), {
    headers: { Authorization: `Bearer ${api.token}` },
    cache: "no-cache",
  });
  if (!response.ok) {
    const text = await response.text();
    let problem;
    try {
      problem = JSON.parse(text);
    } catch {
      problem = { detail: text };
    }
    throw new ApiError(response.status, problem);
  }
  const disposition = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: disposition ? disposition[1] : `${idOf(report.name)}.${report.format.toLowerCase()}` });
  document.body.append(link);
  link.click();
  link.remove();
  // Revoked later: revoking at once can cancel the download before the browser reads it.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function downloadButton(api, report, problems) {
  let busy = false;
  const button = h("button", { type: "button", class: "secondary", "aria-label": `Download ${describe(report)}` }, "Download");
  button.addEventListener("click", async () => {
    if (busy) return;
    busy = true;
    button.textContent = "Downloading…";
    problems.replaceChildren();
    try {
      await download(api, report);
    } catch (problem) {
      problems.replaceChildren(errorBox(problem));
    } finally {
      busy = false;
      button.textContent = "Download";
    }
  });
  return button;
}

// A list built again after every change, with a place for what went wrong (cleared by a
// reload). The first build's failure goes to the router, which signs out on a 401.
async function part(build) {
  const content = h("div");
  const message = h("div", { "aria-live": "polite" });
  async function reload() {
    message.replaceChildren();
    try {
      content.replaceChildren(await build(reload, message));
    } catch (problem) {
      content.replaceChildren(errorBox(problem));
    }
  }
  content.append(await build(reload, message));
  return { content, message, reload };
}

function reportRows(context, reports, reload, message) {
  const { api } = context;
  return reports.map((report) => [
    kindName(report.kind),
    report.format,
    dayRange(report.parameters?.dateRange),
    (report.parameters?.payers || []).join(", ") || "all",
    [badge(report.state), report.state === "FAILED" && report.error ? h("small", { class: "hint" }, ` ${report.error.message}`) : null],
    report.state === "SUCCEEDED" ? bytes(report.sizeBytes) : "—",
    time(report.createTime),
    report.state === "SUCCEEDED" ? downloadButton(api, report, message) : "—",
    ...(api.identity.canWrite
      ? [
          // A report has no etag, and DeleteReport refuses If-Match: the delete is unconditional.
          twoStep("Delete", describe(report), async () => {
            message.replaceChildren();
            try {
              await api.delete(api.named(report.name));
              context.announce("Report deleted.");
              reload();
            } catch (problem) {
              message.replaceChildren(errorBox(problem));
            }
          }),
        ]
      : []),
  ]);
}

async function reportList(context, reload, message) {
  const { api } = context;
  const reports = await api.list("/reports", "reports", {}, 100);
  return h(
    "div",
    {},
    table(
      "Reports, newest first",
      ["Kind", "Format", "Period", "Payers", "State", "Size", "Requested", "File", ...(api.identity.canWrite ? ["Delete"] : [])],
      reportRows(context, reports, reload, message),
      "No report yet.",
    ),
    h("button", { type: "button", class: "secondary", onclick: reload }, "Refresh the list"),
  );
}

function progressOf(api, report, problems) {
  if (report.state === "SUCCEEDED") {
    return h("p", {}, badge(report.state), ` ${describe(report)}: ${bytes(report.sizeBytes)}. `, downloadButton(api, report, problems));
  }
  if (report.state === "FAILED") {
    return h("div", { class: "error", role: "alert" }, h("p", {}, `${describe(report)} failed: ${report.error?.message || "no reason given"}`));
  }
  return h(
    "p",
    {},
    badge(report.state),
    ` Building the ${describe(report)}… `,
    h("progress", { "aria-label": "Building the report" }),
  );
}

// Follows a new report each second until it is built or failed, while this view is shown.
async function follow(context, report, area, problems) {
  const done = await followed(context, report, (now) => area.replaceChildren(progressOf(context.api, now, problems)));
  if (done) context.announce(done.state === "SUCCEEDED" ? "The report is ready to download." : "The report failed.");
}

function reportForm(context, payers, list) {
  const { api } = context;
  const yesterday = new Date(Date.now() - DAY_MS);
  const { fields, kind, format } = kindAndFormat();
  const start = h("input", { type: "date", name: "start", required: true, value: isoDay(new Date(yesterday - 89 * DAY_MS)) });
  const end = h("input", { type: "date", name: "end", required: true, value: isoDay(yesterday) });
  const chosenPayers = payerChoice(payers);
  const area = h("div", { class: "outcome", "aria-live": "polite" });
  const problems = h("div");
  const button = h("button", { type: "submit" }, "Create report");
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "new-report" },
    h("h2", { id: "new-report" }, "New report"),
    h("div", { class: "grid-2" }, fields),
    h("div", { class: "grid-2" }, field("From", start, "First day, by claim decision date"), field("To", end, "Last day, included")),
    chosenPayers.element,
    button,
    problems,
    area,
  );
  submitting(form, button, problems, area, async () => {
    const report = await api.post("/reports", {
      kind: kind.value,
      format: format.value,
      parameters: {
        dateRange: { startDate: dateOf(start.value), endDate: dateOf(end.value) },
        payers: chosenPayers.values(),
      },
    });
    list.reload();
    await follow(context, report, area, problems);
    if (context.current()) list.reload();
  });
  return form;
}

function templateText(template) {
  const parameters = template?.parameters || {};
  const period = parameters.lookbackDays ? `the last ${parameters.lookbackDays} days` : dayRange(parameters.dateRange);
  const payers = (parameters.payers || []).length ? `; ${parameters.payers.join(", ")}` : "";
  return `${kindName(template?.kind)} (${template?.format}), ${period}${payers}`;
}

function scheduleActions(context, schedule, reload, message) {
  const { api } = context;
  const stale = (problem) =>
    problem.stale
      ? conflictBox(`Someone changed “${schedule.displayName}” since you opened it, so your change was not made.`, "Reload the list", reload)
      : errorBox(problem);
  return h(
    "span",
    { class: "buttons" },
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        "aria-label": `${schedule.paused ? "Resume" : "Pause"} ${schedule.displayName}`,
        async onclick() {
          message.replaceChildren();
          try {
            await api.patch(api.named(schedule.name), { paused: !schedule.paused }, { etag: schedule.etag, mask: "paused" });
            context.announce(`Schedule ${schedule.paused ? "resumed" : "paused"}.`);
            reload();
          } catch (problem) {
            message.replaceChildren(stale(problem));
          }
        },
      },
      schedule.paused ? "Resume" : "Pause",
    ),
    twoStep("Delete", schedule.displayName, async () => {
      message.replaceChildren();
      try {
        await api.delete(api.named(schedule.name), { etag: schedule.etag });
        context.announce("Schedule deleted; the reports it made are kept.");
        reload();
      } catch (problem) {
        message.replaceChildren(stale(problem));
      }
    }),
  );
}

async function scheduleList(context, reload, message) {
  const { api } = context;
  const schedules = await api.list("/reportSchedules", "reportSchedules", {}, 1000);
  return table(
    "Report schedules, by name",
    ["Name", "Report", "Runs", "Next run", "Last run", "State", ...(api.identity.canWrite ? ["Actions"] : [])],
    schedules.map((schedule) => [
      schedule.displayName,
      templateText(schedule.reportTemplate),
      [h("code", {}, schedule.cron), ` (${schedule.timeZone || "UTC"})`],
      time(schedule.nextRunTime),
      time(schedule.lastRunTime),
      schedule.paused ? badge("PAUSED", "disabled") : badge("ACTIVE", "succeeded"),
      ...(api.identity.canWrite ? [scheduleActions(context, schedule, reload, message)] : []),
    ]),
    "No schedule yet.",
  );
}

function scheduleForm(context, payers, list) {
  const { api } = context;
  const zones = timeZoneList();
  const displayName = h("input", { type: "text", name: "displayName", required: true, maxlength: 100 });
  const cron = h("input", { type: "text", name: "cron", required: true, value: "0 7 * * MON", spellcheck: "false", autocomplete: "off" });
  const timeZone = h("input", { type: "text", name: "timeZone", value: "UTC", list: zones.id, autocomplete: "off" });
  const { fields, kind, format } = kindAndFormat();
  const lookback = h("input", { type: "number", name: "lookbackDays", required: true, min: 1, max: 730, step: 1, value: 30 });
  const chosenPayers = payerChoice(payers);
  const recipients = h("textarea", { name: "emailRecipients", rows: 3, autocomplete: "off", spellcheck: "false" });
  const problems = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "new-schedule" },
    h("h2", { id: "new-schedule" }, "New schedule"),
    h(
      "div",
      { class: "grid-2" },
      field("Name", displayName, "Shown to people, up to 100 characters"),
      field("When (cron)", cron, "Five fields: minute hour day-of-month month day-of-week; 0 7 * * MON is Mondays at 07:00. At most once an hour."),
      field("Time zone", timeZone, "IANA name the times are in, e.g. America/Chicago"),
      field("Days covered", lookback, "Each report covers this many days (1–730), ending the day before it runs"),
      fields,
    ),
    zones,
    chosenPayers.element,
    field("Email when ready", recipients, "One address per line, at most 50; told with a link to download. Webhooks subscribed to “report ready” are told as well."),
    h("button", { type: "submit" }, "Create schedule"),
    problems,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problems.replaceChildren();
    try {
      const schedule = await api.post("/reportSchedules", {
        displayName: displayName.value.trim(),
        cron: cron.value.trim(),
        timeZone: timeZone.value.trim(),
        reportTemplate: {
          kind: kind.value,
          format: format.value,
          parameters: { lookbackDays: Number(lookback.value), payers: chosenPayers.values() },
        },
        emailRecipients: lines(recipients.value),
      });
      context.announce(`Schedule “${schedule.displayName}” created; it runs next ${time(schedule.nextRunTime)}.`);
      displayName.value = "";
      list.reload();
    } catch (problem) {
      problems.replaceChildren(errorBox(problem));
    }
  });
  return form;
}

export async function render(context) {
  const { api } = context;
  const canWrite = api.identity.canWrite;
  const payers = canWrite ? (await api.list("/payerSummaries", "payerSummaries", { orderBy: "payer" })).map((s) => s.payer) : [];
  const [reports, schedules] = await Promise.all([
    part((reload, message) => reportList(context, reload, message)),
    part((reload, message) => scheduleList(context, reload, message)),
  ]);
  return h(
    "section",
    { "aria-labelledby": "reports-title" },
    h("h1", { id: "reports-title" }, "Reports"),
    canWrite ? reportForm(context, payers, reports) : null,
    h("h2", {}, "Recent reports"),
    h("p", { class: "hint" }, "Kept 30 days after they are built."),
    reports.message,
    reports.content,
    h("h2", {}, "Schedules"),
    h("p", { class: "hint" }, "A schedule makes a report each time its cron expression matches."),
    schedules.message,
    schedules.content,
    canWrite ? scheduleForm(context, payers, schedules) : null,
  );
}
