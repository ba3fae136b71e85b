// Green's traffic weight over a swap's life as a step chart, with the phase changes and the
// gates' readings (their Events: health gates, metric gates, hooks) marked on the same time
// axis. The weights come from the TrafficStepApplied Events ("green N %") and status: 0 % when
// the swap began and from a rollback on, the current weight now. Every mark has a tooltip,
// and the weights are also listed in words under the chart.

import { element } from "./live.js";
import { clock, ms, svg, timeScale, timeTicks } from "./svg.js";

const WIDTH = 760;
const HEIGHT = 200;
const PAD = { left: 44, right: 12, top: 12, bottom: 28 };
const GATE_REASONS = /^(HealthGateFailed|VerificationPassed|MetricGate|Hook|GreenRequestsUnanswered)/;

/** [{t, weight, why}] in time order: the weight green had from each moment on. */
export function weightsOf(swap, events, now = Date.now()) {
  const st = swap.status || {};
  const history = st.history || [];
  const points = [];
  if (history.length) points.push({ t: ms(history[0].time), weight: 0, why: "swap began" });
  for (const e of events) {
    const m = e.reason === "TrafficStepApplied" && /green (\d+) %/.exec(e.note || "");
    if (m) points.push({ t: ms(e.eventTime) || ms(e.metadata.creationTimestamp), weight: Number(m[1]), why: "traffic step" });
  }
  const back = history.find((h) => h.phase === "RollingBack");
  if (back) points.push({ t: ms(back.time), weight: 0, why: "rollback" });
  points.sort((a, b) => a.t - b.t);
  const end = ms(st.finishedAt);
  const last = points.length ? points[points.length - 1].weight : 0;
  const current = st.greenWeightPercent || 0;
  if (points.length && current !== last) points.push({ t: Number.isNaN(end) ? now : end, weight: current, why: "status" });
  return points.filter((p) => !Number.isNaN(p.t));
}

/** The chart as a figure: SVG plus the weights in words. */
export function trafficChart(swap, events, now = Date.now()) {
  const weights = weightsOf(swap, events, now);
  const figure = element("figure", "traffic-figure");
  if (weights.length === 0) {
    figure.append(element("p", "empty", "No traffic moved yet."));
    return figure;
  }
  const st = swap.status || {};
  const end = Number.isNaN(ms(st.finishedAt)) ? now : ms(st.finishedAt);
  const from = weights[0].t;
  const to = Math.max(from + 1000, end, weights[weights.length - 1].t);
  const x = timeScale(from, to, PAD.left, WIDTH - PAD.right);
  const y = (w) => PAD.top + ((100 - w) / 100) * (HEIGHT - PAD.top - PAD.bottom);
  const words = weights.map((p) => `${p.weight} % at ${clock(p.t)} (${p.why})`).join(", ");
  const chart = svg("svg", {
    class: "traffic", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT,
    role: "img", "aria-label": `Green's traffic weight: ${words}`,
  });
  chart.append(axes(y), phaseLines(st.history || [], x, y), weightLine(weights, to, x, y));
  chart.append(gateMarks(events, x, y), timeTicks(from, to, x, HEIGHT - PAD.bottom + 4));
  const caption = element("figcaption", "", "Green's traffic weight (line), phase changes (dashed), gate readings (dots: filled passed, hollow warning)");
  const list = element("p", "weights", `Weight over time: ${words}.`);
  list.dataset.weights = weights.map((p) => p.weight).join(",");
  figure.append(caption, chart, list);
  return figure;
}

function axes(y) {
  const g = svg("g", { class: "axes", "aria-hidden": "true" });
  for (const w of [0, 50, 100]) {
    g.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(w), y2: y(w), class: "grid" }));
    const label = svg("text", { x: PAD.left - 6, y: y(w) + 4, "text-anchor": "end", class: "tick-label" });
    label.textContent = `${w} %`;
    g.append(label);
  }
  return g;
}

function weightLine(weights, to, x, y) {
  let d = `M ${x(weights[0].t)} ${y(weights[0].weight)}`;
  for (const p of weights.slice(1)) d += ` H ${x(p.t)} V ${y(p.weight)}`;
  d += ` H ${x(to)}`;
  const g = svg("g", {});
  g.append(svg("path", { d, class: "weight" }));
  for (const p of weights) {
    g.append(svg("circle", { cx: x(p.t), cy: y(p.weight), r: 3, class: "weight-point" },
      `green ${p.weight} % from ${clock(p.t)} (${p.why})`));
  }
  return g;
}

function phaseLines(history, x, y) {
  const g = svg("g", { class: "phases" });
  for (const h of history) {
    const at = x(ms(h.time));
    g.append(svg("line", { x1: at, x2: at, y1: y(100), y2: y(0), class: `phase-line p-${h.phase}` },
      `${clock(ms(h.time))} ${h.phase}: ${h.reason}`));
  }
  return g;
}

function gateMarks(events, x, y) {
  const g = svg("g", { class: "gate-marks" });
  for (const e of events.filter((ev) => GATE_REASONS.test(ev.reason || ""))) {
    const t = ms(e.eventTime) || ms(e.metadata.creationTimestamp);
    const warning = e.type === "Warning";
    g.append(svg("circle", {
      cx: x(t), cy: y(100) + 6, r: 4, class: warning ? "gate warning" : "gate passed",
      "data-reason": e.reason,
    }, `${clock(t)} ${e.reason}: ${e.note || ""}`));
  }
  return g;
}
