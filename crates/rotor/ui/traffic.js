// Green's traffic weight over a swap's life as a step chart, with the phase changes and the
// gates' readings (their Events: health gates, metric gates, hooks) marked on the same time
// axis. The weights come from the TrafficStepApplied Events ("green N %") and status: 0 % when
// the swap began and from a rollback on, the current weight now. Every mark has a tooltip,
// and the weights are also listed in words under the chart. Under the weight, on the same time
// axis, one lane per gate with what status.gateReadings recorded (passing readings at each
// step's end, and the failing one) and one for the hooks' calls (status.hooks).

import { element } from "./live.js";
import { clock, ms, svg, timeScale, timeTicks } from "./svg.js";

const WIDTH = 760;
const HEIGHT = 200;
const LANE = 22;
const PAD = { left: 64, right: 12, top: 12, bottom: 28 };
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
  // History times have whole seconds: a step applied in the second the rollback began came
  // before it (no step follows a rollback).
  const stepped = Math.max(-Infinity, ...points.map((p) => p.t));
  if (back) points.push({ t: Math.max(ms(back.time), stepped), weight: 0, why: "rollback" });
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
  const lanes = readingLanes(st);
  const height = HEIGHT + lanes.length * LANE;
  const end = Number.isNaN(ms(st.finishedAt)) ? now : ms(st.finishedAt);
  const from = weights[0].t;
  const to = Math.max(from + 1000, end, weights[weights.length - 1].t);
  const x = timeScale(from, to, PAD.left, WIDTH - PAD.right);
  const y = (w) => PAD.top + ((100 - w) / 100) * (HEIGHT - PAD.top - PAD.bottom);
  const words = weights.map((p) => `${p.weight} % at ${clock(p.t)} (${p.why})`).join(", ");
  const chart = svg("svg", {
    class: "traffic", viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height,
    role: "img", "aria-label": `Green's traffic weight: ${words}`,
  });
  chart.append(axes(y), phaseLines(st.history || [], x, y), weightLine(weights, to, x, y));
  chart.append(gateMarks(events, x, y), timeTicks(from, to, x, HEIGHT - PAD.bottom + 4));
  chart.append(drawLanes(lanes, x));
  const caption = element("figcaption", "", "Green's traffic weight (line), phase changes (dashed), gate Events (dots: filled passed, hollow warning); "
    + "under it one lane per gate: its readings (filled: kept its bound, hollow square: broke it) and the hooks' calls");
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

/** A gate reading's words: what, value, bound, verdict and weight. */
export function readingWords(r) {
  const unit = r.kind === "ErrorRate" ? " %" : r.kind === "Latency" ? " ms" : "";
  const value = r.value === undefined || r.value === null ? "not a number" : `${r.value}${unit}`;
  return `${gateName(r)} ${value} (${r.threshold}) ${r.passed ? "passed" : "FAILED"} at ${r.weightPercent} %`;
}

/** The gate a reading is of, in words. */
export function gateName(r) {
  if (r.kind === "ErrorRate") return "error rate";
  if (r.kind === "Latency") return `latency ${r.name}`;
  return `metric gate ${r.name}`;
}

/** [{label, marks: [{t, passed, title}]}]: one lane per gate read, then one for the hooks. */
function readingLanes(st) {
  const lanes = new Map();
  for (const r of st.gateReadings || []) {
    const key = gateName(r);
    const short = r.kind === "ErrorRate" ? "errors" : r.name;
    const label = short.length > 9 ? `${short.slice(0, 8)}\u2026` : short;
    if (!lanes.has(key)) lanes.set(key, { label, marks: [] });
    lanes.get(key).marks.push({ t: ms(r.time), passed: r.passed, title: `${clock(ms(r.time))} ${readingWords(r)}` });
  }
  const hooks = (st.hooks || []).filter((h) => h.lastCalledAt);
  if (hooks.length) {
    lanes.set("hooks", { label: "hooks", marks: hooks.map((h) => ({
      t: ms(h.lastCalledAt), passed: h.state !== "Failed",
      title: `${clock(ms(h.lastCalledAt))} hook ${h.name} at ${h.point}${h.step === undefined ? "" : ` step ${h.step}`}: ${h.state}`,
    })) });
  }
  return [...lanes.values()];
}

function drawLanes(lanes, x) {
  const g = svg("g", { class: "reading-lanes" });
  lanes.forEach((lane, i) => {
    const cy = HEIGHT + i * LANE + LANE / 2 - 6;
    const label = svg("text", { x: PAD.left - 6, y: cy + 4, "text-anchor": "end", class: "tick-label lane-label" });
    label.textContent = lane.label;
    g.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: cy, y2: cy, class: "grid" }), label);
    for (const m of lane.marks.filter((mk) => !Number.isNaN(mk.t))) {
      g.append(m.passed
        ? svg("circle", { cx: x(m.t), cy, r: 4, class: "reading passed" }, m.title)
        : svg("rect", { x: x(m.t) - 5, y: cy - 5, width: 10, height: 10, class: "reading failed" }, m.title));
    }
  });
  return g;
}
