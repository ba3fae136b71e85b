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

/** The chart of `swaps` (cluster → swap), or null when none has begun. */
export function ganttOf(rollout, swaps, now = Date.now()) {
  const rows = [...swaps.entries()]
    .map(([cluster, swap]) => ({ cluster, swap, segments: segmentsOf(swap, now) }))
    .filter((r) => r.segments.length > 0)
    .sort((a, b) => a.segments[0].from - b.segments[0].from);
  if (rows.length === 0) return null;
  const shown = rows.slice(0, MAX_ROWS);
  const from = Math.min(...shown.map((r) => r.segments[0].from));
  const to = Math.max(from + 1000, ...shown.map((r) => r.segments[r.segments.length - 1].to));
  const x = timeScale(from, to, LEFT, WIDTH - 10);
  const height = shown.length * ROW + 30;
  const chart = svg("svg", {
    class: "gantt", viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height, role: "img",
    "aria-label": `Timeline of ${rows.length} swaps of rollout ${rollout.metadata.name}, ${clock(from)} to ${clock(to)}`,
  });
  shown.forEach((row, i) => chart.append(ganttRow(row, i, x)));
  chart.append(timeTicks(from, to, x, shown.length * ROW + 8));
  const figure = element("figure", "gantt-figure");
  const caption = element("figcaption", "", "Swaps over time (one row per cluster; hover a segment for its phase)");
  figure.append(caption, chart);
  if (rows.length > shown.length) {
    figure.append(element("p", "muted", `${rows.length - shown.length} more swaps not drawn`));
  }
  return figure;
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
