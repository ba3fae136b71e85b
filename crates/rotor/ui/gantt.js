// A rollout's swaps on one time axis: one row per cluster, each phase of its swap (from the
// swap's status.history) a segment, coloured by family and named in its tooltip. The same
// facts are in the swap view's timeline in words; the chart is the overview.

import { element } from "./live.js";
import { clock, ms, svg, timeScale, timeTicks } from "./svg.js";

const ROW = 16;
const LEFT = 170;
const WIDTH = 760;
/** Beyond this many rows the chart says how many it left out rather than grow without end. */
const MAX_ROWS = 200;

/** The colour family of a phase (a class in style.css); the legend names each. */
export function familyOf(phase) {
  if (["RollingBack", "RolledBack"].includes(phase)) return "rolledBack";
  if (phase === "Failed") return "failed";
  if (phase === "Succeeded") return "succeeded";
  if (["ShiftingTraffic", "Draining"].includes(phase)) return "traffic";
  if (["Retaining", "Decommissioning"].includes(phase)) return "retaining";
  return "preparing";
}

/** Segments `{phase, from, to}` of a swap's history; the last runs to its end or `now`. */
export function segmentsOf(swap, now) {
  const history = (swap.status && swap.status.history) || [];
  const end = ms(swap.status && swap.status.finishedAt);
  return history.map((h, i) => {
    const next = history[i + 1];
    const to = next ? ms(next.time) : Number.isNaN(end) ? now : end;
    return { phase: h.phase, from: ms(h.time), to: Math.max(to, ms(h.time)) };
  });
}

/**
 * The time axis ends at the next whole step after the last time drawn, so it (and every row's
 * geometry with it) changes about once a step, not at every redraw.
 */
const AXIS_STEP_MS = 60 * 1000;

/**
 * One rollout's chart, kept across redraws: while the rows drawn and the axis stay, a redraw
 * replaces only the rows whose swap changed (with 1,000 clusters and 50 swaps running, a
 * handful a frame rather than 200). A running swap's last segment grows when its swap changes.
 */
export class GanttChart {
  constructor() {
    this.figure = element("figure", "gantt-figure");
    this.layout = null; // the axis and the rows drawn, as one string
    this.rows = new Map(); // cluster → {g, version}
    this.chart = null;
    this.more = null;
  }

  /** The chart of `swaps` (cluster → swap) of `rollout`, or null when none has begun. */
  update(rollout, swaps, now = Date.now()) {
    const rows = [...swaps.entries()]
      .map(([cluster, swap]) => ({ cluster, swap, segments: segmentsOf(swap, now) }))
      .filter((r) => r.segments.length > 0)
      .sort((a, b) => a.segments[0].from - b.segments[0].from);
    if (rows.length === 0) return null;
    const shown = rows.slice(0, MAX_ROWS);
    const from = Math.min(...shown.map((r) => r.segments[0].from));
    const end = Math.max(from + 1000, ...shown.map((r) => r.segments[r.segments.length - 1].to));
    const to = from + Math.ceil((end - from) / AXIS_STEP_MS) * AXIS_STEP_MS;
    const x = timeScale(from, to, LEFT, WIDTH - 10);
    const layout = `${from} ${to} ${shown.map((r) => r.cluster).join("\u0000")}`;
    if (layout !== this.layout) this.draw(shown, from, to, x, layout);
    else this.redrawChanged(shown, x);
    this.chart.setAttribute("aria-label",
      `Timeline of ${rows.length} swaps of rollout ${rollout.metadata.name}, ${clock(from)} to ${clock(to)}`);
    const more = rows.length - shown.length;
    this.more.hidden = more === 0;
    this.more.textContent = more ? `${more} more swaps not drawn` : "";
    return this.figure;
  }

  /** Every row and the axis drawn afresh. */
  draw(shown, from, to, x, layout) {
    this.layout = layout;
    const height = shown.length * ROW + 30;
    this.chart = svg("svg", {
      class: "gantt", viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height, role: "img",
    });
    this.rows.clear();
    shown.forEach((row, i) => {
      const g = ganttRow(row, i, x);
      this.rows.set(row.cluster, { g, version: row.swap.metadata.resourceVersion });
      this.chart.append(g);
    });
    this.chart.append(timeTicks(from, to, x, shown.length * ROW + 8));
    const caption = element("figcaption", "", "Swaps over time (one row per cluster; hover a segment for its phase)");
    this.more = element("p", "muted");
    this.figure.replaceChildren(caption, this.chart, this.more);
  }

  /** The rows whose swap has another resourceVersion than the one drawn. */
  redrawChanged(shown, x) {
    shown.forEach((row, i) => {
      const drawn = this.rows.get(row.cluster);
      const version = row.swap.metadata.resourceVersion;
      if (drawn.version === version) return;
      const g = ganttRow(row, i, x);
      drawn.g.replaceWith(g);
      this.rows.set(row.cluster, { g, version });
    });
  }
}

function ganttRow({ cluster, swap, segments }, i, x) {
  const y = i * ROW;
  const link = svg("a", { href: `#swap/${encodeURIComponent(swap.metadata.name)}` });
  const label = svg("text", { x: LEFT - 6, y: y + ROW - 4, "text-anchor": "end", class: "row-label" });
  label.textContent = cluster;
  link.append(label);
  const group = svg("g", { "data-cluster": cluster });
  group.append(link);
  for (const s of segments) {
    const words = `${cluster}: ${s.phase} ${clock(s.from)}\u2013${clock(s.to)}`;
    group.append(svg("rect", {
      x: x(s.from), y: y + 2, height: ROW - 4,
      width: Math.max(1, x(s.to) - x(s.from)),
      class: `phase f-${familyOf(s.phase)}`, "data-phase": s.phase,
    }, words));
  }
  return group;
}
