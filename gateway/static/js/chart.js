// A weekly series against its baseline: the line, the baseline value and a band of the
// baseline weeks' middle 80 %, in SVG; the numbers also as a table for screen readers.

import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 220;
const PAD = { top: 12, right: 12, bottom: 28, left: 52 };

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  for (const child of children) if (child) element.append(child);
  return element;
}

function quantile(sorted, q) {
  if (!sorted.length) return undefined;
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const high = Math.ceil(position);
  return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
}

function dateOf(value) {
  return new Date(Date.UTC(value.year, value.month - 1, value.day));
}

// points: [{week: Date message, value, claims}]; baseline: {value, window: {startDate, endDate}};
// current: the Date message the current window begins on, shaded from there (optional).
export function weeklyChart({ title, points, baseline, format, current }) {
  const weeks = points.filter((point) => Number(point.claims) > 0);
  const inBaseline = baseline.window
    ? weeks.filter(
        (point) =>
          dateOf(point.week) >= dateOf(baseline.window.startDate) &&
          dateOf(point.week) <= dateOf(baseline.window.endDate),
      )
    : [];
  const sorted = inBaseline.map((point) => point.value).sort((a, b) => a - b);
  const band = sorted.length >= 4 ? [quantile(sorted, 0.1), quantile(sorted, 0.9)] : null;
  const values = [...weeks.map((point) => point.value), baseline.value, ...(band || [])].filter(
    (value) => Number.isFinite(value),
  );
  let low = Math.min(...values, 0);
  let high = Math.max(...values);
  // Room above the highest value; a flat series (every week 0 %) gets a unit's range.
  if (high > low) high += (high - low) * 0.08;
  else high = low + 1;
  const x = (index) => PAD.left + (index * (WIDTH - PAD.left - PAD.right)) / Math.max(points.length - 1, 1);
  const y = (value) => PAD.top + ((high - value) * (HEIGHT - PAD.top - PAD.bottom)) / (high - low);

  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "chart",
    role: "img",
    "aria-label": `${title}: weekly values against the baseline`,
  });
  for (const tick of [low, (low + high) / 2, high]) {
    chart.append(
      svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(tick), y2: y(tick), class: "grid" }),
      svg("text", { x: PAD.left - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end" }, document.createTextNode(format(tick))),
    );
  }
  if (band) {
    chart.append(
      svg("rect", {
        x: PAD.left,
        width: WIDTH - PAD.left - PAD.right,
        y: y(band[1]),
        height: Math.max(1, y(band[0]) - y(band[1])),
        class: "band",
      }),
    );
  }
  const currentFrom = current ? points.findIndex((point) => dateOf(point.week) >= dateOf(current)) : -1;
  if (currentFrom >= 0) {
    const left = x(currentFrom) - (currentFrom ? (x(1) - x(0)) / 2 : 0);
    chart.append(svg("rect", { x: left, width: WIDTH - PAD.right - left, y: PAD.top, height: HEIGHT - PAD.top - PAD.bottom, class: "current" }));
  }
  if (Number.isFinite(baseline.value)) {
    chart.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(baseline.value), y2: y(baseline.value), class: "baseline" }));
  }
  const path = points
    .map((point, index) => (Number(point.claims) > 0 ? [index, point.value] : null))
    .filter(Boolean)
    .map(([index, value], order) => `${order ? "L" : "M"}${x(index).toFixed(1)},${y(value).toFixed(1)}`)
    .join(" ");
  chart.append(svg("path", { d: path, class: "series" }));
  points.forEach((point, index) => {
    if (Number(point.claims) > 0) chart.append(svg("circle", { cx: x(index), cy: y(point.value), r: 2.5, class: "dot" }));
    if (index % 4 === 0) {
      const label = dateOf(point.week).toLocaleDateString("en-US", { month: "short", day: "numeric", timeZone: "UTC" });
      chart.append(svg("text", { x: x(index), y: HEIGHT - 8, class: "axis", "text-anchor": "middle" }, document.createTextNode(label)));
    }
  });

  return h(
    "figure",
    { class: "chart-figure" },
    h("figcaption", {}, title),
    chart,
    h(
      "p",
      { class: "legend" },
      h("span", { class: "key key-series" }, "weekly"),
      Number.isFinite(baseline.value)
        ? h("span", { class: "key key-baseline" }, `baseline ${format(baseline.value)}`)
        : h("span", {}, "no baseline claims"),
      band ? h("span", { class: "key key-band" }, `baseline weeks' middle 80 % (${format(band[0])} – ${format(band[1])})`) : null,
      currentFrom >= 0 ? h("span", { class: "key key-current" }, "current window") : null,
    ),
    h(
      "details",
      {},
      h("summary", {}, "The numbers"),
      h(
        "table",
        {},
        h("caption", {}, `${title}, by week`),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Week of"), h("th", { scope: "col" }, "Claims"), h("th", { scope: "col" }, "Value"))),
        h(
          "tbody",
          {},
          points.map((point) =>
            h(
              "tr",
              {},
              h("td", {}, dateOf(point.week).toISOString().slice(0, 10)),
              h("td", {}, String(point.claims)),
              h("td", {}, Number(point.claims) > 0 ? format(point.value) : "—"),
            ),
          ),
        ),
      ),
    ),
  );
}

// The three metrics a payer summary's weekly series carries.
export const METRICS = {
  DENIAL_RATE: { title: "Denial rate", field: "denialRate", format: (v) => `${(v * 100).toFixed(1)} %` },
  DECISION_DAYS: { title: "Days to decision (median)", field: "medianDecisionDays", format: (v) => `${v.toFixed(1)} d` },
  PAYMENT_RATIO: { title: "Paid ÷ allowed", field: "paidToAllowedRatio", format: (v) => `${(v * 100).toFixed(1)} %` },
};

export function metricChart(summary, metric) {
  const spec = METRICS[metric];
  return weeklyChart({
    title: `${summary.payer}: ${spec.title}`,
    points: (summary.weeklySeries || []).map((point) => ({
      week: point.weekStart,
      claims: point.claims,
      value: Number(point[spec.field] || 0),
    })),
    // A baseline without decided claims has no value to draw.
    baseline: {
      value: Number(summary.baseline?.claims) ? Number(summary.baseline[spec.field] || 0) : NaN,
      window: summary.baselineWindow,
    },
    format: spec.format,
  });
}

// --- an event's own series -------------------------------------------------------------------

const DAY_MS = 86_400_000;
const dayNumber = (value) => Math.round(dateOf(value).getTime() / DAY_MS);
const isoDay = (day) => new Date(day * DAY_MS).toISOString().slice(0, 10);
function dateMessage(day) {
  const date = new Date(day * DAY_MS);
  return { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() };
}

// The weeks of an event's chart: a week begins on its current window's first day, and every
// 7 days before it back over the baseline window; the last ends with the current window.
export function eventWeeks(event) {
  const first = dayNumber(event.baselineWindow.startDate);
  const since = dayNumber(event.currentWindow.startDate);
  const starts = [];
  for (let day = since - 7 * Math.floor((since - first) / 7); day <= dayNumber(event.currentWindow.endDate); day += 7) {
    starts.push(day);
  }
  return {
    starts,
    query: {
      payers: [event.payer],
      startDate: isoDay(starts[0]),
      endDate: isoDay(dayNumber(event.currentWindow.endDate)),
      entrySpanStarts: starts.map(isoDay),
    },
  };
}

function weightedMedian(histogram) {
  const entries = [...histogram.entries()].sort((a, b) => a[0] - b[0]);
  const total = entries.reduce((sum, [, claims]) => sum + claims, 0);
  let seen = 0;
  for (const [days, claims] of entries) {
    seen += claims;
    if (seen * 2 >= total) return days;
  }
  return NaN;
}

// Each week's value of `metric` for the event's payer and code group (all its groups for a
// payer-wide event), from its daily statistics (`series`: DailyStatSeries, read with entry
// spans that begin on the weeks' first days).
function eventPoints(event, metric, starts, series) {
  const weeks = starts.map((start) => ({ start, decided: 0, denied: 0, allowed: 0, settled: 0, histogram: new Map() }));
  const weekOf = (day) => weeks[Math.floor((day - starts[0]) / 7)];
  const at = (values, i) => Number((values || [])[i] || 0);
  for (const one of series) {
    if (event.codeGroup && one.codeGroup !== event.codeGroup) continue;
    const days = one.decisionDates || [];
    days.forEach((day, i) => {
      const week = weekOf(day);
      if (!week) return;
      week.decided += at(one.decidedClaims, i);
      week.denied += at(one.deniedClaims, i);
      week.allowed += at(one.allowedCents, i);
      week.settled += at(one.paidCents, i) + at(one.patientResponsibilityCents, i);
    });
    (one.histogramDay || []).forEach((dayIndex, j) => {
      const week = weekOf(days[dayIndex]);
      if (!week) return;
      const taken = at(one.histogramDays, j);
      week.histogram.set(taken, (week.histogram.get(taken) || 0) + at(one.histogramClaims, j));
    });
  }
  return weeks.map((week) => {
    let claims = week.decided;
    let value = week.decided ? week.denied / week.decided : NaN;
    if (metric === "PAYMENT_RATIO") {
      value = week.allowed ? week.settled / week.allowed : NaN;
      if (!week.allowed) claims = 0;
    } else if (metric === "DECISION_DAYS") {
      claims = [...week.histogram.values()].reduce((sum, n) => sum + n, 0);
      value = weightedMedian(week.histogram);
    }
    return { week: dateMessage(week.start), claims, value };
  });
}

// The chart of an event: its payer and code group, week by week over its baseline and
// current windows, against the baseline the evidence gives (a reason-mix event shows the
// denial rate, against its baseline weeks').
export function eventChart(event, series, title) {
  const metric = METRICS[event.metric] ? event.metric : "DENIAL_RATE";
  const spec = METRICS[metric];
  const { starts } = eventWeeks(event);
  const points = eventPoints(event, metric, starts, series);
  let value = Number(event.evidence?.baselineValue);
  if (metric !== event.metric) {
    const since = dayNumber(event.currentWindow.startDate);
    const before = points.filter((point) => dayNumber(point.week) < since && point.claims > 0);
    const decided = before.reduce((sum, point) => sum + point.claims, 0);
    value = decided ? before.reduce((sum, point) => sum + point.value * point.claims, 0) / decided : NaN;
  }
  // An event's payment ratio counts the patients' share as settled, as detection does.
  const named = metric === "PAYMENT_RATIO" ? "(Paid + patient share) ÷ allowed" : spec.title;
  return weeklyChart({
    title: `${title}: ${named}`,
    points,
    baseline: { value, window: event.baselineWindow },
    format: spec.format,
    current: event.currentWindow.startDate,
  });
}
