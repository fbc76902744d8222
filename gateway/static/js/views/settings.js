// Settings: who is alerted of drift and how (the alert policy) and the alerts sent lately, and
// what detection counts as a drift (the drift settings). A save sends only the fields changed, conditional on the etag, so
// a colleague's change is never overwritten unseen; viewers read the values, nothing to save.

import { badge, conflictBox, errorBox, field, h, select, table, time, timeZoneList, uniqueId, words } from "../dom.js";

const DAY_SECONDS = 24 * 60 * 60;
const METRICS = ["DENIAL_RATE", "DECISION_DAYS", "PAYMENT_RATIO", "DENIAL_REASON_MIX"];

// A setting: its field in the resource, its value as the form shows it (`current`), a control
// showing that value with `read()` giving it back, and the value as text for readers.
function setting(key, label, current, control, text, changed) {
  return { key, label, current, control, text, changed };
}

function hinted(element, hint) {
  const note = h("small", { class: "hint", id: uniqueId("hint") }, hint);
  element.setAttribute("aria-describedby", note.id);
  return note;
}

function numberSetting(key, label, hint, { min, max, step = "any" }) {
  return setting(
    key,
    label,
    (resource) => resource[key],
    (value) => {
      const input = h("input", { type: "number", name: key, required: true, min, max, step, value: String(value) });
      return { element: field(label, input, hint), read: () => input.valueAsNumber };
    },
    String,
  );
}

function choiceSetting(key, label, hint, options, fallback) {
  return setting(
    key,
    label,
    (resource) => resource[key] || fallback,
    (value) => {
      const control = select(key, options, value);
      return { element: field(label, control, hint), read: () => control.value };
    },
    (value) => (options.find(([option]) => option === value) || [value, words(value)])[1],
  );
}

function checkSetting(key, label, hint) {
  return setting(
    key,
    label,
    (resource) => Boolean(resource[key]),
    (value) => {
      const input = h("input", { type: "checkbox", name: key, checked: value });
      const note = hinted(input, hint);
      return { element: h("div", { class: "field" }, h("label", {}, input, ` ${label}`), note), read: () => input.checked };
    },
    (value) => (value ? "Yes" : "No"),
  );
}

const HOURS = Array.from({ length: 24 }, (_, hour) => [String(hour), `${String(hour).padStart(2, "0")}:00`]);

const ALERT_SETTINGS = [
  setting(
    "emailRecipients",
    "Email recipients",
    (resource) => resource.emailRecipients || [],
    (value) => {
      const input = h("textarea", { name: "emailRecipients", rows: 4, autocomplete: "off", spellcheck: "false" }, value.join("\n"));
      return {
        element: field("Email recipients", input, "One address per line (name@example.com), at most 50; none to alert no one by email"),
        read: () => input.value.split("\n").map((line) => line.trim()).filter(Boolean),
      };
    },
    (value) => value.join(", ") || "None",
  ),
  // The Slack URL grants posting to the channel, so it is never read back: only its host is.
  setting(
    "slackWebhookUrl",
    "Slack incoming webhook",
    (resource) => resource.slackWebhookHost || "",
    (host) => {
      const input = h("input", { type: "url", name: "slackWebhookUrl", maxlength: 2048, autocomplete: "off", spellcheck: "false" });
      const remove = h("input", { type: "checkbox", name: "removeSlack" });
      const hint = host
        ? `One is set, posting to ${host}; it is never shown. Enter a URL to replace it.`
        : "https://hooks.slack.com/services/…, reachable on public addresses only; never shown once saved.";
      return {
        element: h(
          "div",
          {},
          field("Slack incoming webhook URL", input, hint),
          host ? h("div", { class: "field" }, h("label", {}, remove, " Stop alerting Slack (remove the URL)")) : null,
        ),
        // Undefined leaves it as it is: an empty box means "keep", not "remove".
        read: () => (remove.checked ? "" : input.value.trim() || undefined),
      };
    },
    (host) => (host ? `Set, posting to ${host}` : "None"),
    (value) => value !== undefined,
  ),
  choiceSetting(
    "minimumSeverity",
    "Alert from severity",
    "Drift events at or above it are alerted when they open or rise in severity",
    [
      ["HIGH", "High only"],
      ["MEDIUM", "Medium and high"],
      ["LOW", "Low, medium and high"],
    ],
    "MEDIUM",
  ),
  setting(
    "suppressionWindow",
    "Quiet period (days)",
    // A proto Duration in JSON, "604800s" (unset means 7 days); shown in days, sent in whole seconds.
    (resource) => `${Math.round(parseFloat(resource.suppressionWindow || `${7 * DAY_SECONDS}s`))}s`,
    (value) => {
      const input = h("input", {
        type: "number",
        name: "suppressionWindow",
        required: true,
        min: 0,
        max: 90,
        step: "any",
        value: String(Number((parseFloat(value) / DAY_SECONDS).toFixed(4))),
      });
      return {
        element: field("Quiet period (days)", input, "The same payer, code group and metric is not alerted again for this long unless its severity rises; 0–90, 0 alerts every change"),
        read: () => `${Math.round(input.valueAsNumber * DAY_SECONDS)}s`,
      };
    },
    (value) => `${Number((parseFloat(value) / DAY_SECONDS).toFixed(4))} days`,
  ),
  choiceSetting(
    "deliveryMode",
    "When alerts go out",
    "A webhook the server disables is alerted at once, whatever is chosen here",
    [
      ["IMMEDIATE", "At once, one alert per change"],
      ["DAILY_DIGEST", "Once a day, in a digest"],
    ],
    "IMMEDIATE",
  ),
  setting(
    "digestHour",
    "Digest hour",
    (resource) => resource.digestHour ?? 8,
    (value) => {
      const control = select("digestHour", HOURS, String(value));
      return { element: field("Digest hour", control, "When the daily digest goes out, in the time zone below"), read: () => Number(control.value) };
    },
    (value) => HOURS[value][1],
  ),
  setting(
    "timeZone",
    "Time zone",
    (resource) => resource.timeZone || "UTC",
    (value) => {
      const zones = timeZoneList();
      const input = h("input", { type: "text", name: "timeZone", maxlength: 64, list: zones.id, value, autocomplete: "off" });
      return { element: h("div", {}, field("Time zone", input, "IANA name of the digest hour's zone, e.g. America/Chicago"), zones), read: () => input.value.trim() };
    },
    String,
  ),
  checkSetting(
    "alertWhenEnded",
    "Alert when an alerted drift ends",
    "When a run no longer finds a drift that was alerted, or none of its claims are left, say so the same way",
  ),
  checkSetting("disabled", "Pause all alerts", "Changes recorded while paused are never alerted, not even later"),
];

const DRIFT_SETTINGS = [
  numberSetting("currentWindowDays", "Current window (days)", "The days measured, ending on the run date; 7–365, default 30", { min: 7, max: 365, step: 1 }),
  numberSetting("baselineWindowDays", "Baseline window (days)", "The days just before the current window; 14–730 and at least the current window", { min: 14, max: 730, step: 1 }),
  numberSetting("denialRateMinIncreasePoints", "Denial rate: least rise (percentage points)", "0–100, default 5; both denial-rate floors must be met", { min: 0, max: 100 }),
  numberSetting("denialRateMinRatio", "Denial rate: least ratio (current ÷ baseline)", "At least 1, default 1.25", { min: 1 }),
  numberSetting("decisionDaysMinIncrease", "Days to decision: least rise (days)", "The Hodges–Lehmann shift; at least 0, default 3", { min: 0 }),
  numberSetting("decisionDaysMinIncreaseFraction", "Days to decision: least rise (share of the baseline median)", "0–10, default 0.20 (+20 %); both floors must be met", { min: 0, max: 10 }),
  numberSetting("paymentRatioMinDrop", "Paid ÷ allowed: least drop", "0–1, default 0.05", { min: 0, max: 1 }),
  numberSetting("minCurrentClaims", "Least decided claims, current window", "Fewer and a code group rolls up to its payer; 1–100000, default 50", { min: 1, max: 100000, step: 1 }),
  numberSetting("minBaselineClaims", "Least decided claims, baseline window", "1–100000, default 150", { min: 1, max: 100000, step: 1 }),
  numberSetting("falseDiscoveryRate", "False discovery rate (q)", "Benjamini–Hochberg over all cells of a run; 0.001–0.5, default 0.10", { min: 0.001, max: 0.5 }),
  setting(
    "enabledMetrics",
    "Metrics tested",
    (resource) => resource.enabledMetrics || [],
    (value) => {
      const set = h(
        "fieldset",
        {},
        h("legend", {}, "Metrics tested"),
        METRICS.map((metric) => h("label", {}, h("input", { type: "checkbox", name: "enabledMetrics", value: metric, checked: value.includes(metric) }), words(metric))),
      );
      const note = hinted(set, "At least one; default all four");
      set.append(note);
      return { element: set, read: () => [...set.querySelectorAll("input:checked")].map((input) => input.value) };
    },
    (value) => value.map(words).join(", "),
    (value, current) => [...value].sort().join() !== [...current].sort().join(),
  ),
];

// `denialRateMinRatio` → `denial_rate_min_ratio`: update masks name proto fields.
function snake(key) {
  return key.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

function lastChange(resource) {
  if (!resource.updateTime) return null;
  return h("p", { class: "hint" }, `Last changed ${time(resource.updateTime)}${resource.updatedBy ? ` by ${resource.updatedBy}` : ""}.`);
}

function settingsCard(context, options, resource, note) {
  const { api } = context;
  const { id, title, path, settings } = options;
  const heading = h("h2", { id }, title);
  if (!api.identity.canWrite) {
    return h(
      "section",
      { class: "card", "aria-labelledby": id },
      heading,
      lastChange(resource),
      h("dl", {}, settings.map((s) => [h("dt", {}, s.label), h("dd", {}, s.text(s.current(resource)))])),
    );
  }
  const controls = settings.map((s) => {
    const value = s.current(resource);
    return { setting: s, value, ...s.control(value) };
  });
  const message = h("div", { "aria-live": "polite" }, note ? h("p", {}, note) : null);
  const form = h(
    "form",
    { class: "card", "aria-labelledby": id },
    heading,
    lastChange(resource),
    h("div", { class: "grid-2" }, controls.map((c) => c.element)),
    h("button", { type: "submit" }, `Save ${title.toLowerCase()}`),
    message,
  );

  // The card built again from the resource as it now is, keeping the keyboard on Save.
  function replace(updated, text) {
    const fresh = settingsCard(context, options, updated, text);
    form.replaceWith(fresh);
    fresh.querySelector('button[type="submit"]').focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const changes = {};
    const mask = [];
    for (const { setting: s, value, read } of controls) {
      const now = read();
      if (s.changed ? s.changed(now, value) : JSON.stringify(now) !== JSON.stringify(value)) {
        changes[s.key] = now;
        mask.push(snake(s.key));
      }
    }
    if (!mask.length) {
      message.replaceChildren(h("p", { class: "notice" }, "Nothing to save: no value changed."));
      return;
    }
    message.replaceChildren();
    try {
      replace(await api.patch(path, changes, { etag: resource.etag, mask: mask.join(",") }), options.saved ? options.saved() : "Saved.");
      context.announce(`${title} saved.`);
    } catch (problem) {
      if (!problem.stale) {
        message.replaceChildren(errorBox(problem));
        return;
      }
      const reload = async () => {
        try {
          replace(await api.get(path), "These are the settings as they are now; make your change again.");
        } catch (again) {
          message.replaceChildren(errorBox(again));
        }
      };
      message.replaceChildren(
        conflictBox(
          "Someone changed these settings since you opened them, so yours were not saved.",
          "Reload these settings",
          reload,
        ),
      );
    }
  });
  return form;
}

// Alerts the list shows, newest first.
const ALERTS_SHOWN = 50;
const ALERT_STATES = [
  ["", "Every state"],
  ["FAILED", "Failed (given up)"],
  ["RETRYING", "Retrying"],
  ["PENDING", "Waiting to be sent"],
  ["SENT", "Sent"],
];

function alertTo(alert) {
  const to = (alert.recipients || []).join(", ");
  return alert.channel === "SLACK" ? `Slack (${to})` : to;
}

// What an alert told of: its subject once an attempt wrote it, else its kind and events.
function alertWhat(alert) {
  if (alert.subject) return alert.subject;
  const changes = alert.driftEventChangeCount ? ` (${alert.driftEventChangeCount} changes)` : "";
  return `${words(alert.kind)}${changes}`;
}

function alertState(alert) {
  const attempts = alert.attemptCount || 0;
  const tried = attempts ? `${attempts} attempt${attempts === 1 ? "" : "s"}` : "not attempted yet";
  return h(
    "span",
    {},
    badge(alert.state),
    ` ${tried}`,
    alert.lastError ? h("span", { class: "hint", "data-testid": "alert-error" }, ` — ${alert.lastError}`) : null,
    alert.nextAttemptTime ? h("span", { class: "hint" }, ` — next ${time(alert.nextAttemptTime)}`) : null,
  );
}

// The alerts sent (or not) lately: an alert that never arrived says here why.
function alertsCard(context) {
  const { api } = context;
  const filter = select("state", ALERT_STATES, "");
  const holder = h("div", { "aria-live": "polite" });
  async function reload() {
    try {
      const query = filter.value ? { filter: `state = ${filter.value}` } : {};
      const alerts = await api.list("/alerts", "alerts", query, ALERTS_SHOWN);
      holder.replaceChildren(
        table(
          "Alerts, newest first",
          ["Queued", "About", "To", "State"],
          alerts.map((alert) => [time(alert.createTime), alertWhat(alert), alertTo(alert), alertState(alert)]),
          filter.value ? "No alert in this state." : "No alert yet: they follow drift events that reach the policy's severity.",
        ),
      );
    } catch (problem) {
      holder.replaceChildren(errorBox(problem));
    }
  }
  filter.addEventListener("change", reload);
  reload();
  return h(
    "section",
    { class: "card", "aria-labelledby": "alerts-title" },
    h("h2", { id: "alerts-title" }, "Alerts sent"),
    h("p", { class: "hint" }, `The latest ${ALERTS_SHOWN} of the last 30 days, each with how its last attempt went.`),
    field("Show", filter),
    h("button", { type: "button", class: "secondary", onclick: reload }, "Refresh alerts"),
    holder,
  );
}

export async function render(context) {
  const { api } = context;
  const [policy, config] = await Promise.all([api.get("/alertPolicy"), api.get("/driftConfig")]);
  return h(
    "section",
    { "aria-labelledby": "settings-title" },
    h("h1", { id: "settings-title" }, "Settings"),
    settingsCard(
      context,
      { id: "alert-settings", title: "Alert settings", path: "/alertPolicy", settings: ALERT_SETTINGS },
      policy,
    ),
    alertsCard(context),
    settingsCard(
      context,
      {
        id: "drift-settings",
        title: "Drift settings",
        path: "/driftConfig",
        settings: DRIFT_SETTINGS,
        // Events change only when a run uses the settings: the next upload's, or one started now.
        saved: () => ["Saved. Detection uses them from its next run: ", h("a", { href: "#/runs" }, "run detection now"), " to see what they find."],
      },
      config,
    ),
  );
}
