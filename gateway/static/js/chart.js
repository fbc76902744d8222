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

// points: [{week: Date message, value, claims}]; baseline: {value, window: {startDate, endDate}}
export function weeklyChart({ title, points, baseline, format }) {
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
  if (!(high > low)) high = low + 1;
  high += (high - low) * 0.08;
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
      h("span", { class: "key key-baseline" }, `baseline ${format(baseline.value)}`),
      band ? h("span", { class: "key key-band" }, `baseline weeks' middle 80 % (${format(band[0])} – ${format(band[1])})`) : null,
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
    baseline: { value: Number(summary.baseline?.[spec.field]), window: summary.baselineWindow },
    format: spec.format,
  });
}
