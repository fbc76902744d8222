// Uploads: a file dropped or chosen is sent with a progress bar, then its rows counted;
// the history of uploads; one upload's rejections (line, column, value, reason).

import { badge, bytes, count, day, errorBox, field, h, idOf, select, table, time, twoStep } from "../dom.js";
import { deletionRun, uploadRun } from "./runs.js";

const FOLLOW_EVERY_MS = 700;
const MODES = [
  ["ACCEPT_VALID", "Keep the valid rows, list the others"],
  ["ALL_OR_NOTHING", "Keep nothing if any row is invalid"],
];
// The columns a CSV's headers may be named for (the upload's column map), as the API names
// them, and as this page says them.
const COLUMNS = [
  ["claim_id", "Claim ID"],
  ["payer", "Payer"],
  ["procedure_code", "Procedure code"],
  ["service_date", "Service date"],
  ["submitted_date", "Submitted date"],
  ["decision_date", "Decision date"],
  ["status", "Status"],
  ["billed_amount", "Billed amount"],
  ["allowed_amount", "Allowed amount"],
  ["paid_amount", "Paid amount"],
  ["patient_responsibility", "Patient responsibility"],
  ["carc_codes", "Denial (CARC) codes"],
];

// A header for each column the file names otherwise; those left empty are found by name.
function columnNames() {
  const inputs = COLUMNS.map(([column, label]) => [
    column,
    label,
    h("input", { type: "text", name: `column-${column}`, autocomplete: "off", spellcheck: "false" }),
  ]);
  const element = h(
    "details",
    { class: "column-names" },
    h("summary", {}, "Columns with other headings"),
    h("p", { class: "hint" }, "Headings of common exports are recognised. Type the heading your file uses for a column only where it is not."),
    h("div", { class: "columns" }, inputs.map(([, label, input]) => field(label, input))),
  );
  const map = () => {
    const named = {};
    for (const [column, , input] of inputs) {
      if (input.value.trim()) named[column] = input.value.trim();
    }
    return named;
  };
  return { element, map };
}

function uploader(context) {
  const { api } = context;
  const input = h("input", { type: "file", name: "file", accept: ".csv,.txt,.tsv,.835,.edi,.x12,.gz,.zip,.xlsx,.xls,.xml,.htm,.html,text/csv,application/gzip,application/zip" });
  const mode = select("mode", MODES, "ACCEPT_VALID");
  const columns = columnNames();
  const progress = h("progress", { max: 100, value: 0, "aria-label": "Upload progress" });
  const progressText = h("p", { class: "progress-text", "aria-live": "polite" });
  const outcome = h("div", { class: "outcome" });
  const button = h("button", { type: "submit" }, "Upload");
  const zone = h(
    "div",
    { class: "drop-zone" },
    h("p", {}, "Drop a claims file here (CSV, X12 835 or an Excel workbook; zipped or gzip-compressed too), or choose one."),
    field("Claims file", input),
  );
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      send();
    }
  });

  async function send() {
    const file = input.files[0];
    if (!file) {
      outcome.replaceChildren(errorBox(new Error("Choose a file to upload first.")));
      input.focus();
      return;
    }
    button.disabled = true;
    outcome.replaceChildren();
    progress.hidden = false;
    progress.value = 0;
    // The id is chosen here, so the upload can be read (PROCESSING, rows so far) while it
    // is sent; a retry of the same choice is the same upload (the key), never a second.
    const uploadId = `web-${crypto.randomUUID()}`;
    let sent = 0;
    let total = file.size;
    let rowsRead = 0;
    const show = () => {
      const rows = rowsRead ? ` · ${count(rowsRead)} rows processed` : "";
      progressText.textContent =
        sent < total ? `${bytes(sent)} of ${bytes(total)} sent${rows}` : `${bytes(total)} sent${rows}; reading the rest…`;
    };
    let following = null;
    // Looked up once bytes are flowing (the service has begun it by then), so the first
    // look never finds nothing.
    const follow = () => {
      following = setInterval(async () => {
        try {
          const reading = await api.get(`/uploads/${uploadId}`);
          // A look answered after the upload ended says nothing new.
          if (reading.state === "PROCESSING" && following !== -1) {
            rowsRead = Number(reading.rowsRead || 0);
            show();
          }
        } catch {
          // A blip: the next look will tell.
        }
      }, FOLLOW_EVERY_MS);
    };
    try {
      const upload = await api.upload(file, {
        mode: mode.value,
        columnMap: columns.map(),
        uploadId,
        requestId: uploadId,
        onProgress(bytesSent, bytesTotal) {
          if (following === null) follow();
          sent = bytesSent;
          total = bytesTotal;
          progress.max = bytesTotal || 1;
          progress.value = bytesSent;
          show();
        },
      });
      clearInterval(following);
      following = -1;
      progress.value = progress.max;
      progressText.textContent = `${count(upload.rowsRead)} rows processed: ${count(upload.rowsAccepted)} accepted, ${count(upload.rowsRejected)} rejected.`;
      context.announce(`Upload of ${file.name} finished.`);
      outcome.replaceChildren(
        h(
          "p",
          {},
          badge(upload.state),
          " ",
          h("a", { href: `#/uploads/${idOf(upload.name)}` }, `${upload.fileName}: ${count(upload.claimsAccepted)} claims stored`),
        ),
        upload.state === "SUCCEEDED" ? h("p", {}, uploadRun(context, idOf(upload.name))) : null,
      );
      history.replaceChildren(await historyTable(api));
    } catch (problem) {
      clearInterval(following);
      following = -1;
      progressText.textContent = "The upload was refused.";
      outcome.replaceChildren(errorBox(problem));
      if ((problem.metadata || {}).problem === "MISSING_COLUMN") {
        // Headings the service did not know: where to name them, opened.
        columns.element.open = true;
        outcome.append(h("p", { class: "hint" }, "If the file has these columns under other headings, type its headings under “Columns with other headings” and upload it again."));
      }
    } finally {
      button.disabled = false;
    }
  }

  const form = h(
    "form",
    { class: "card", "aria-labelledby": "new-upload" },
    h("h2", { id: "new-upload" }, "Upload claims"),
    zone,
    field("When a row is invalid", mode),
    columns.element,
    button,
    progress,
    progressText,
    outcome,
  );
  progress.hidden = true;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  const history = h("div");
  return { form, history };
}

// An upload's state, and how many warnings its page explains (one may concern detection).
export function stateWithWarnings(upload) {
  const warnings = (upload.warnings || []).length;
  if (!warnings) return badge(upload.state);
  const said = `${warnings} warning${warnings === 1 ? "" : "s"}`;
  return h("span", {}, badge(upload.state), " ", h("span", { class: "hint", "data-testid": "upload-warnings" }, said));
}

async function historyTable(api) {
  const uploads = await api.list("/uploads", "uploads", {}, 100);
  return table(
    "Uploads, newest first",
    ["File", "State", "Rows accepted", "Rows rejected", "Decisions", "Uploaded"],
    uploads.map((upload) => [
      h("a", { href: `#/uploads/${idOf(upload.name)}` }, upload.fileName || idOf(upload.name)),
      stateWithWarnings(upload),
      count(upload.rowsAccepted),
      count(upload.rowsRejected),
      `${day(upload.firstDecisionDate)} – ${day(upload.lastDecisionDate)}`,
      time(upload.createTime),
    ]),
    "No upload yet.",
  );
}

async function detail(context) {
  const { api, path } = context;
  const name = `${api.base.slice(4)}/uploads/${path[0]}`;
  const [upload, rejections] = await Promise.all([
    api.get(api.named(name)),
    api.list(`${api.named(name)}/rejections`, "uploadRejections", {}, 1000),
  ]);
  return h(
    "section",
    { "aria-labelledby": "upload-title" },
    h("p", {}, h("a", { href: "#/uploads" }, "← Uploads")),
    h("h1", { id: "upload-title" }, upload.fileName || idOf(upload.name)),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "State"),
      h("dd", {}, badge(upload.state)),
      h("dt", {}, "Format"),
      h("dd", {}, upload.format),
      h("dt", {}, "Size"),
      h("dd", {}, bytes(upload.sizeBytes)),
      h("dt", {}, "Rows"),
      h("dd", {}, `${count(upload.rowsRead)} read, ${count(upload.rowsAccepted)} accepted, ${count(upload.rowsRejected)} rejected`),
      h("dt", {}, "Claims stored"),
      h("dd", {}, count(upload.claimsAccepted)),
      h("dt", {}, "Payers"),
      h("dd", {}, (upload.payers || []).join(", ") || "—"),
      h("dt", {}, "Uploaded by"),
      h("dd", {}, `${upload.creator || "—"}, ${time(upload.createTime)}`),
      upload.state === "SUCCEEDED" ? [h("dt", {}, "Detection"), h("dd", {}, uploadRun(context, idOf(upload.name)))] : null,
      ...columnsRead(upload.columnMap || {}),
    ),
    upload.error ? h("div", { class: "error", role: "alert" }, upload.error.message || "") : null,
    (upload.warnings || []).length
      ? [
          h("h2", {}, "How the file was read"),
          h("ul", { class: "warnings", "aria-label": "How the file was read" }, upload.warnings.map((warning) => h("li", {}, warningText(warning)))),
        ]
      : null,
    h("h2", {}, "Rejected rows"),
    table(
      "Rows that were not stored, in file order",
      ["Line", "Column", "Value", "Reason"],
      rejections.map((rejection) => [
        rejection.lineNumber || rejection.segmentNumber || "—",
        rejection.column || "—",
        h("code", {}, rejection.rawValue || ""),
        rejection.reason,
      ]),
      "Every row was accepted.",
    ),
    api.identity.canWrite && upload.state !== "PROCESSING" ? deleteCard(context, upload) : null,
  );
}

// A file sent by mistake taken back: its claims, its rejected rows, and what detection found
// in them (a run follows the deletion).
function deleteCard(context, upload) {
  const { api } = context;
  const area = h("div", { "aria-live": "polite" });
  const file = upload.fileName || idOf(upload.name);
  return h(
    "div",
    { class: "card", role: "group", "aria-labelledby": "delete-upload" },
    h("h2", { id: "delete-upload" }, "Delete"),
    h(
      "p",
      {},
      "Deleting the upload removes the claims it last wrote and its rejected rows. Detection runs again without them: what it found in them alone ends.",
    ),
    twoStep("Delete", "this upload", async () => {
      area.replaceChildren();
      try {
        await api.delete(api.named(upload.name));
      } catch (problem) {
        area.replaceChildren(errorBox(problem));
        return;
      }
      // Only an upload whose claims were still its own takes any away, and starts a run.
      area.replaceChildren(`“${file}” deleted. Waiting for detection to run without it…`);
      const run = Number(upload.claimsAccepted) ? await deletionRun(context, idOf(upload.name)) : null;
      context.announce(run ? `Upload “${file}” deleted; detection runs again without its claims.` : `Upload “${file}” deleted.`);
      location.hash = run ? "#/runs" : "#/uploads";
    }),
    area,
  );
}

// A warning with the line it is about, unless its message says it already.
function warningText(warning) {
  const line = Number(warning.lineNumber || 0); // an int64: a string in JSON, "0" for the whole file
  if (!line || new RegExp(`\\bline ${line}\\b`, "i").test(warning.message)) return warning.message;
  return `Line ${line}: ${warning.message}`;
}

// The headings the upload named its columns by, if it did.
function columnsRead(columnMap) {
  const named = COLUMNS.filter(([column]) => columnMap[column]);
  if (!named.length) return [];
  return [
    h("dt", {}, "Columns named"),
    h("dd", {}, named.map(([column, label]) => `${label}: “${columnMap[column]}”`).join("; ")),
  ];
}

export async function render(context) {
  if (context.path.length) return detail(context);
  const { form, history } = uploader(context);
  history.append(await historyTable(context.api));
  return h(
    "section",
    { "aria-labelledby": "uploads-title" },
    h("h1", { id: "uploads-title" }, "Uploads"),
    context.api.identity.canWrite ? form : null,
    h("h2", {}, "History"),
    history,
  );
}
