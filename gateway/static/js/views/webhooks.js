// Webhooks: the endpoints told of drift events and ready reports. The signing secret is in the
// answer to a create or a rotation only, so it is shown then, once; one webhook's page edits,
// tests and deletes it and lists its deliveries, each of which can be sent again.

import { badge, conflictBox, errorBox, field, h, idOf, table, time, twoStep, uniqueId, words } from "../dom.js";

const EVENT_TYPES = [
  ["DRIFT_EVENT_OPENED", "Drift event opened"],
  ["DRIFT_EVENT_UPDATED", "Drift event updated"],
  ["DRIFT_EVENT_CLOSED", "Drift event closed"],
  ["REPORT_READY", "Report ready"],
];
const FINAL = ["SUCCEEDED", "FAILED"];

function nameOf(webhook) {
  return webhook.displayName || idOf(webhook.name);
}

function typesText(types) {
  return (types || []).map(words).join(", ") || "—";
}

function stateOf(webhook) {
  return [
    webhook.disabled ? badge("DISABLED") : badge("ENABLED", "succeeded"),
    webhook.disabledReason ? h("small", { class: "hint" }, webhook.disabledReason) : null,
  ];
}

function eventTypeChoice(chosen) {
  const hint = h(
    "small",
    { class: "hint", id: uniqueId("hint") },
    "Opened: detection found a new drift. Updated: an open event changed (found again, or triaged). " +
      "Closed: the drift is no longer found. Report ready: a report was built. A test is sent whatever is chosen.",
  );
  const set = h(
    "fieldset",
    { "aria-describedby": hint.id },
    h("legend", {}, "Event types"),
    EVENT_TYPES.map(([value, text]) =>
      h("label", {}, h("input", { type: "checkbox", name: "eventTypes", value, checked: chosen.includes(value) }), text),
    ),
    hint,
  );
  return { element: set, values: () => [...set.querySelectorAll("input:checked")].map((input) => input.value) };
}

function nameInput(value = "") {
  return h("input", { type: "text", name: "displayName", maxlength: 100, value, autocomplete: "off" });
}

function urlInput(value = "") {
  return h("input", { type: "url", name: "url", required: true, maxlength: 2048, value, autocomplete: "off", spellcheck: "false" });
}

const URL_HINT = "https:// on public addresses only (checked now and at every send), at most 2048 characters";

// The secret, shown until the page changes; copied by the clipboard, else selected for Ctrl+C.
function secretBox(context, webhook, note) {
  const code = h("code", {}, webhook.signingSecret);
  const copy = h("button", { type: "button", class: "secondary" }, "Copy the secret");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(webhook.signingSecret);
      context.announce("Signing secret copied.");
    } catch {
      // No clipboard here (a page not served over https, or permission refused).
      getSelection().selectAllChildren(code);
      context.announce("The secret is selected: press Ctrl+C (⌘C on a Mac) to copy it.");
    }
  });
  const box = h(
    "div",
    { class: "secret", role: "group", "aria-label": `Signing secret of ${nameOf(webhook)}` },
    h("p", {}, h("strong", {}, `Signing secret of ${nameOf(webhook)}: `), code),
    h("p", {}, "Store it now where your receiver reads it: it will not be shown again. ", note || ""),
    copy,
  );
  return { box, copy };
}

function showSecret(context, area, webhook, note) {
  const { box, copy } = secretBox(context, webhook, note);
  area.replaceChildren(box);
  copy.focus();
}

function conflict(context) {
  return conflictBox(
    "Someone changed this webhook since you opened it, so your change was not saved.",
    "Reload the webhook",
    () => context.refresh(),
  );
}

// Runs a write, showing what went wrong in `area`, a stale etag as a conflict.
async function attempt(context, area, write) {
  area.replaceChildren();
  try {
    await write();
  } catch (problem) {
    area.replaceChildren(problem.stale ? conflict(context) : errorBox(problem));
  }
}

function createForm(context, reload) {
  const { api } = context;
  const displayName = nameInput();
  const url = urlInput();
  const types = eventTypeChoice(EVENT_TYPES.map(([value]) => value));
  const outcome = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "new-webhook" },
    h("h2", { id: "new-webhook" }, "New webhook"),
    field("Name", displayName, "Shown to people, up to 100 characters"),
    field("URL", url, URL_HINT),
    types.element,
    h("button", { type: "submit" }, "Create webhook"),
    outcome,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await attempt(context, outcome, async () => {
      const webhook = await api.post("/webhooks", {
        displayName: displayName.value.trim(),
        url: url.value.trim(),
        eventTypes: types.values(),
      });
      context.announce("Webhook created: copy its signing secret now, it will not be shown again.");
      displayName.value = "";
      url.value = "";
      const link = h("p", {}, "Created ", h("a", { href: `#/webhooks/${idOf(webhook.name)}` }, nameOf(webhook)), ".");
      showSecret(context, outcome, webhook);
      outcome.prepend(link);
      // The secret stays shown even if the list cannot be read again.
      reload().catch((problem) => outcome.append(errorBox(problem)));
    });
  });
  return form;
}

async function list(context) {
  const { api } = context;
  const holder = h("div");
  async function reload() {
    const webhooks = await api.list("/webhooks", "webhooks", {}, 1000);
    holder.replaceChildren(
      table(
        "Webhooks, oldest first",
        ["Name", "URL", "Event types", "State"],
        webhooks.map((webhook) => [
          h("a", { href: `#/webhooks/${idOf(webhook.name)}` }, nameOf(webhook)),
          h("code", {}, webhook.url),
          typesText(webhook.eventTypes),
          stateOf(webhook),
        ]),
        "No webhook yet.",
      ),
    );
  }
  await reload();
  return h(
    "section",
    { "aria-labelledby": "webhooks-title" },
    h("h1", { id: "webhooks-title" }, "Webhooks"),
    h("p", {}, "Endpoints sent each event as a signed POST (Standard Webhooks), retried with backoff when they fail."),
    context.api.identity.canWrite ? createForm(context, reload) : null,
    h("h2", {}, "Endpoints"),
    holder,
  );
}

function factsOf(webhook) {
  return [
    h("dt", {}, "URL"),
    h("dd", {}, h("code", {}, webhook.url)),
    h("dt", {}, "Event types"),
    h("dd", {}, typesText(webhook.eventTypes)),
    h("dt", {}, "State"),
    h("dd", {}, stateOf(webhook)),
    h("dt", {}, "Created"),
    h("dd", {}, time(webhook.createTime)),
    h("dt", {}, "Last changed"),
    h("dd", {}, time(webhook.updateTime)),
    webhook.previousSecretExpireTime
      ? [h("dt", {}, "Replaced secret valid until"), h("dd", {}, time(webhook.previousSecretExpireTime))]
      : null,
  ];
}

function latency(duration) {
  return `${Math.round(parseFloat(duration) * 1000)} ms`;
}

function testOutcome(delivery) {
  const last = (delivery.attempts || []).at(-1) || {};
  const answer = last.responseCode ? `The endpoint answered HTTP ${last.responseCode}` : "No answer";
  return h(
    "div",
    { class: "outcome" },
    h("p", {}, badge(delivery.state), ` ${answer}${last.latency ? ` after ${latency(last.latency)}` : ""}${last.error ? `: ${last.error}` : "."}`),
    last.responseBody ? [h("p", {}, "Its answer began:"), h("pre", { class: "response-body" }, last.responseBody)] : null,
  );
}

function deliveryRows(context, webhook, deliveries, area, reload) {
  const { api } = context;
  return deliveries.map((delivery) => [
    words(delivery.eventType),
    badge(delivery.state),
    `${delivery.attemptCount || 0}${delivery.redeliveryCount ? ` (${delivery.redeliveryCount} sent again)` : ""}`,
    delivery.lastResponseCode ? `HTTP ${delivery.lastResponseCode}` : "none",
    delivery.lastError || "—",
    time(delivery.nextAttemptTime),
    time(delivery.createTime),
    // Only a finished delivery of an enabled webhook can be sent again; the server refuses others.
    ...(api.identity.canWrite
      ? [
          FINAL.includes(delivery.state) && !webhook.disabled
            ? h(
                "button",
                {
                  type: "button",
                  class: "secondary",
                  "aria-label": `Redeliver the ${words(delivery.eventType)} event queued ${time(delivery.createTime)}`,
                  onclick: () =>
                    attempt(context, area, async () => {
                      await api.post(`${api.named(delivery.name)}:redeliver`, {});
                      context.announce("Delivery queued to be sent again.");
                      reload();
                    }),
                },
                "Redeliver",
              )
            : "—",
        ]
      : []),
  ]);
}

function sameTypes(a, b) {
  return [...a].sort().join() === [...b].sort().join();
}

async function detail(context) {
  const { api, path } = context;
  let webhook = await api.get(api.named(`${api.base.slice(4)}/webhooks/${path[0]}`));
  const canWrite = api.identity.canWrite;
  const title = h("h1", { id: "webhook-title" });
  const facts = h("dl", { class: "facts" });
  const deliveries = h("div");
  const deliveriesArea = h("div", { "aria-live": "polite" });
  const toggle = h("button", { type: "button", class: "secondary" });

  async function reloadDeliveries() {
    const found = await api.list(`${api.named(webhook.name)}/deliveries`, "webhookDeliveries", {}, 100);
    deliveries.replaceChildren(
      table(
        "Deliveries, newest first",
        ["Event", "State", "Attempts", "Last response", "Last error", "Next attempt", "Queued", ...(canWrite ? ["Send again"] : [])],
        deliveryRows(context, webhook, found, deliveriesArea, reloadDeliveries),
        "Nothing delivered in the last 30 days.",
      ),
    );
  }

  function show(updated) {
    webhook = updated;
    title.textContent = nameOf(webhook);
    facts.replaceChildren(...factsOf(webhook).flat().filter(Boolean));
    toggle.textContent = webhook.disabled ? "Enable deliveries" : "Disable deliveries";
  }

  function editCard() {
    const displayName = nameInput(webhook.displayName);
    const url = urlInput(webhook.url);
    const types = eventTypeChoice(webhook.eventTypes || []);
    const area = h("div", { "aria-live": "polite" });
    const form = h(
      "form",
      { class: "card", "aria-labelledby": "edit-webhook" },
      h("h2", { id: "edit-webhook" }, "Change"),
      field("Name", displayName, "Shown to people, up to 100 characters"),
      field("URL", url, URL_HINT),
      types.element,
      h("button", { type: "submit" }, "Save changes"),
      area,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      // Only the fields changed go in the mask, so a colleague's change to another is kept.
      const changes = {};
      const mask = [];
      if (displayName.value.trim() !== (webhook.displayName || "")) {
        changes.displayName = displayName.value.trim();
        mask.push("display_name");
      }
      if (url.value.trim() !== webhook.url) {
        changes.url = url.value.trim();
        mask.push("url");
      }
      if (!sameTypes(types.values(), webhook.eventTypes || [])) {
        changes.eventTypes = types.values();
        mask.push("event_types");
      }
      if (!mask.length) {
        area.replaceChildren(h("p", { class: "notice" }, "Nothing to save: no value changed."));
        return;
      }
      attempt(context, area, async () => {
        show(await api.patch(api.named(webhook.name), changes, { etag: webhook.etag, mask: mask.join(",") }));
        context.announce("Webhook saved.");
      });
    });
    return form;
  }

  function actionsCard() {
    const area = h("div", { "aria-live": "polite" });
    const secretArea = h("div");
    const testArea = h("div", { "aria-live": "polite" });
    toggle.addEventListener("click", () =>
      attempt(context, area, async () => {
        show(await api.patch(api.named(webhook.name), { disabled: !webhook.disabled }, { etag: webhook.etag, mask: "disabled" }));
        context.announce(webhook.disabled ? "Deliveries disabled." : "Deliveries enabled.");
        await reloadDeliveries();
      }),
    );
    const rotate = h("button", { type: "button", class: "secondary" }, "Rotate the signing secret");
    rotate.addEventListener("click", () =>
      attempt(context, area, async () => {
        const rotated = await api.post(`${api.named(webhook.name)}:rotateSecret`, {});
        show(rotated);
        context.announce("New signing secret made: copy it now, it will not be shown again.");
        showSecret(
          context,
          secretArea,
          rotated,
          `The replaced secret also signs deliveries until ${time(rotated.previousSecretExpireTime)}, so your receiver can switch meanwhile.`,
        );
      }),
    );
    let testing = false;
    const test = h("button", { type: "button", class: "secondary" }, "Send a test event");
    test.addEventListener("click", async () => {
      if (testing) return;
      testing = true;
      test.textContent = "Sending…";
      testArea.replaceChildren();
      await attempt(context, area, async () => {
        testArea.replaceChildren(testOutcome(await api.post(`${api.named(webhook.name)}:test`, {})));
        await reloadDeliveries();
      });
      testing = false;
      test.textContent = "Send a test event";
    });
    return h(
      "div",
      { class: "card", role: "group", "aria-labelledby": "webhook-actions" },
      h("h2", { id: "webhook-actions" }, "Deliveries and secret"),
      h("div", { class: "buttons" }, toggle, rotate, test),
      h(
        "p",
        { class: "hint" },
        "Events that occur while deliveries are disabled are never sent. A new secret replaces the old one, " +
          "which stays valid 24 hours. A test is sent even when disabled, once, and waits up to 10 s for the answer.",
      ),
      area,
      secretArea,
      testArea,
    );
  }

  function deleteCard() {
    const area = h("div", { "aria-live": "polite" });
    return h(
      "div",
      { class: "card", role: "group", "aria-labelledby": "delete-webhook" },
      h("h2", { id: "delete-webhook" }, "Delete"),
      h("p", {}, "Deleting the webhook drops its deliveries, pending ones included."),
      twoStep("Delete", "this webhook", () =>
        attempt(context, area, async () => {
          await api.delete(api.named(webhook.name), { etag: webhook.etag });
          context.announce(`Webhook “${nameOf(webhook)}” deleted.`);
          location.hash = "#/webhooks";
        }),
      ),
      area,
    );
  }

  show(webhook);
  await reloadDeliveries();
  return h(
    "section",
    { "aria-labelledby": "webhook-title" },
    h("p", {}, h("a", { href: "#/webhooks" }, "← Webhooks")),
    title,
    facts,
    canWrite ? [editCard(), actionsCard()] : null,
    h("h2", {}, "Deliveries"),
    h("p", { class: "hint" }, "Kept 30 days. A finished delivery can be sent again, with the same webhook-id, while the webhook is enabled."),
    deliveriesArea,
    h("button", { type: "button", class: "secondary", onclick: () => attempt(context, deliveriesArea, reloadDeliveries) }, "Refresh deliveries"),
    deliveries,
    canWrite ? deleteCard() : null,
  );
}

export function render(context) {
  return context.path.length ? detail(context) : list(context);
}
