// A rollout's swaps on one time axis: one row per cluster, each phase of its swap (from the
// swap's status.history) a segment, coloured by family and named in its tooltip. The same
// facts are in the swap view's timeline in words; the chart is the overview.

import { element } from "./live.js";
import { clock, ms, svg, timeScale, timeTicks } from "./svg.js";

const ROW = 16;
const LEFT = 170;
const WIDTH = 760;
/**
 * Rows on one page of the chart. A rollout may have 10,000 clusters: the chart pages them, so
 * the page holds at most this many rows whatever the fleet, each a real link in the tab order.
 */
export const PAGE_ROWS = 200;

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

/** Rows in the order drawn: by start, then by cluster name (history times have whole
 * seconds, so many swaps start in the same one; the name keeps each row in its place). */
function byStart(a, b) {
  const d = a.segments[0].from - b.segments[0].from;
  if (d !== 0) return d;
  return a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0;
}

/**
 * The time axis ends at the next whole step after the last time drawn, so it (and every row's
 * geometry with it) changes about once a step, not at every redraw.
 */
const AXIS_STEP_MS = 60 * 1000;

/** The buttons of the pager, in order: what each is called and the page it goes to. */
const PAGER = [
  { key: "first", label: "First", to: () => 0 },
  { key: "previous", label: "Previous", to: (page) => page - 1 },
  { key: "next", label: "Next", to: (page) => page + 1 },
  { key: "last", label: "Last", to: (_, pages) => pages - 1 },
];

/**
 * One rollout's chart, kept across redraws: while the rows drawn and the axis stay, a redraw
 * replaces only the rows whose swap changed (with 1,000 clusters and 50 swaps running, a
 * handful a frame). A running swap's last segment grows when its swap changes. Past
 * [`PAGE_ROWS`] swaps the chart is paged (First, Previous, Next, Last: buttons, kept across
 * redraws so the keyboard's focus stays on them); every page shares the whole rollout's axis.
 */
export class GanttChart {
  constructor() {
    this.figure = element("figure", "gantt-figure");
    this.layout = null; // the axis and the rows drawn, as one string
    this.rows = new Map(); // cluster → {g, version}
    this.chart = null;
    this.page = 0;
    this.last = null; // the arguments of the last update, to draw another page with
    this.known = new Map(); // cluster → {version, segments} of its swap as last seen
    this.caption = element("figcaption", "",
      "Swaps over time (one row per cluster, by start; hover a segment for its phase)");
    this.pager = this.makePager();
    this.figure.append(this.caption, this.pager.nav);
  }

  /** The pager: its buttons and the words saying which rows are drawn (announced politely). */
  makePager() {
    const nav = element("div", "gantt-pager");
    nav.setAttribute("role", "group");
    nav.setAttribute("aria-label", "Pages of the timeline");
    const buttons = new Map();
    const where = element("span", "gantt-rows");
    where.setAttribute("role", "status");
    for (const b of PAGER) {
      const button = element("button", "pager", b.label);
      button.type = "button";
      button.dataset.page = b.key;
      button.addEventListener("click", () => this.turn(b.to));
      buttons.set(b.key, button);
    }
    nav.append(buttons.get("first"), buttons.get("previous"), where, buttons.get("next"), buttons.get("last"));
    return { nav, buttons, where };
  }

  /** Goes to the page `to(page, pages)` names, if there is one, and draws it now. */
  turn(to) {
    if (!this.last) return;
    const pages = this.pages;
    const page = to(this.page, pages);
    if (page < 0 || page >= pages || page === this.page) return;
    this.page = page;
    this.update(...this.last);
  }

  /** The chart of `swaps` (cluster → swap) of `rollout`, or null when none has begun. */
  update(rollout, swaps, now = Date.now()) {
    this.last = [rollout, swaps];
    const rows = this.begun(swaps, now);
    if (rows.length === 0) return null;
    this.pages = Math.ceil(rows.length / PAGE_ROWS);
    this.page = Math.min(this.page, this.pages - 1);
    const first = this.page * PAGE_ROWS;
    const shown = rows.slice(first, first + PAGE_ROWS);
    // One axis for every page: from the first start to the last time of any row.
    let end = rows[0].segments[0].from + 1000;
    for (const r of rows) end = Math.max(end, r.segments[r.segments.length - 1].to);
    const from = rows[0].segments[0].from;
    const to = from + Math.ceil((end - from) / AXIS_STEP_MS) * AXIS_STEP_MS;
    const x = timeScale(from, to, LEFT, WIDTH - 10);
    const layout = `${from} ${to} ${shown.map((r) => r.cluster).join("\u0000")}`;
    if (layout !== this.layout) this.draw(shown, from, to, x, layout);
    else this.redrawChanged(shown, x);
    const range = `rows ${first + 1}\u2013${first + shown.length} of ${rows.length}`;
    this.chart.setAttribute("aria-label",
      `Timeline of ${rows.length} swaps of rollout ${rollout.metadata.name}, ${range}, ${clock(from)} to ${clock(to)}`);
    this.showPager(range);
    return this.figure;
  }

  /**
   * The swaps begun, as rows `{cluster, swap, segments}` in the order drawn. A swap's segments
   * are computed when it changed (a running swap's last one to that moment, as its row is
   * drawn): with 10,000 swaps, parsing every history at every redraw took over 100 ms.
   */
  begun(swaps, now) {
    const rows = [];
    for (const [cluster, swap] of swaps) {
      const version = swap.metadata.resourceVersion;
      let known = this.known.get(cluster);
      if (!known || known.version !== version) {
        known = { version, segments: segmentsOf(swap, now) };
        this.known.set(cluster, known);
      }
      if (known.segments.length > 0) rows.push({ cluster, swap, segments: known.segments });
    }
    for (const cluster of this.known.keys()) if (!swaps.has(cluster)) this.known.delete(cluster);
    return rows.sort(byStart);
  }

  /** The pager's words and buttons; hidden while one page holds every row. */
  showPager(range) {
    const { nav, buttons, where } = this.pager;
    nav.hidden = this.pages <= 1;
    where.textContent = `${range}, page ${this.page + 1} of ${this.pages}`;
    // aria-disabled, not disabled: a button pressed to the end keeps the keyboard's focus.
    const atStart = this.page === 0;
    const atEnd = this.page === this.pages - 1;
    for (const [key, button] of buttons) {
      const off = key === "first" || key === "previous" ? atStart : atEnd;
      button.setAttribute("aria-disabled", String(off));
    }
  }

  /** Every row of the page and the axis drawn afresh. */
  draw(shown, from, to, x, layout) {
    this.layout = layout;
    const height = shown.length * ROW + 30;
    const chart = svg("svg", {
      class: "gantt", viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height, role: "img",
    });
    this.rows.clear();
    shown.forEach((row, i) => {
      const g = ganttRow(row, i, x);
      this.rows.set(row.cluster, { g, version: row.swap.metadata.resourceVersion });
      chart.append(g);
    });
    chart.append(timeTicks(from, to, x, shown.length * ROW + 8));
    if (this.chart) this.chart.replaceWith(chart);
    else this.figure.append(chart);
    this.chart = chart;
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
