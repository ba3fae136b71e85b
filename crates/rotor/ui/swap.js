// The swap view (#swap/NAME): one ClusterSwap's facts, its phase timeline (status.history),
// green's traffic weight over time with the phase changes and the gates' readings on the same
// time axis, the gates as recorded in status (conditions, metric gates, hooks), and its Events.
// The swap comes from the shared watch on every ClusterSwap (`SwapStore`), its Events from a
// list+watch with a field selector on `regarding` — nothing polled.

import { LiveView, element, factList } from "./live.js";
import { act, actionButton, canRollBack, may, toolbar } from "./actions.js";
import { familyOf } from "./gantt.js";
import { gateName, trafficChart } from "./traffic.js";
import { clock, ms } from "./svg.js";

const EVENTS = "/apis/events.k8s.io/v1/namespaces/default/events";
const MARK = { rolledBack: "\u21a9", failed: "\u2715", succeeded: "\u2713" };

/**
 * One swap's view: its Events are this view's collection (list+watch); the swap itself is read
 * from the store of every swap, whose changes redraw the view too.
 */
export class SwapView extends LiveView {
  constructor(root, swaps) {
    super(root, "#swap-events-connection");
    this.name = null;
    this.swaps = swaps;
    swaps.subscribe(() => {
      if (this.controller) this.schedule();
    });
    this.body = root.querySelector("#swap-body");
    this.title = root.querySelector("#swap-title");
  }

  /** Shows swap `name` and follows its Events (again only when the name changed). */
  open(name) {
    if (name === this.name && this.controller) return;
    this.name = name;
    this.title.textContent = `Swap ${name}`;
    this.follow(EVENTS, { fieldSelector: `regarding.kind=ClusterSwap,regarding.name=${name}` });
  }

  render() {
    const swap = this.swaps.objects.get(this.name);
    if (!swap) {
      this.body.replaceChildren(element("p", "empty", `No ClusterSwap ${this.name || ""} (yet).`));
      return;
    }
    // A retried swap has the name of the attempt before it: that attempt's Events are not its.
    const born = Math.floor(ms(swap.metadata.creationTimestamp) / 1000) * 1000;
    const events = [...this.objects.values()]
      .filter((e) => !(eventTime(e) < born))
      .sort((a, b) => eventTime(a) - eventTime(b));
    const actions = this.actions(swap);
    this.body.replaceChildren(
      facts(swap),
      ...(actions ? [actions] : []),
      section("Phase timeline", timeline(swap)),
      section("Traffic and gates over time", trafficChart(swap, events)),
      section("Gates", gates(swap)),
      section("Events", eventTable(events)),
    );
  }

  /** Roll back: offered to who may `operate` ClusterSwaps while blue can still take traffic. */
  actions(swap) {
    if (!may.swaps || !canRollBack(swap)) return null;
    const name = swap.metadata.name;
    return toolbar(`Actions on swap ${name}`, [
      actionButton("Roll back swap", `Roll back swap ${name}?`,
        "Sets spec.rollback: all traffic goes back to blue and green is deleted. It cannot be withdrawn.",
        () => act.rollBackSwap(name), () => `swap ${name}: rollback requested`),
    ]);
  }
}

/** When an Event happened last (its series' last observation, else its time). */
export function eventTime(e) {
  const t = ms((e.series && e.series.lastObservedTime) || e.eventTime || e.deprecatedLastTimestamp);
  return Number.isNaN(t) ? ms(e.metadata.creationTimestamp) : t;
}

function section(title, content) {
  const s = element("section", "swap-part");
  s.append(element("h3", "", title), content);
  return s;
}

function facts(swap) {
  const spec = swap.spec || {};
  const st = swap.status || {};
  const labels = swap.metadata.labels || {};
  const m = st.migration;
  const rows = [
    ["Cluster", spec.clusterRef],
    ["Rollout", labels["rotor.dev/rollout"] || "none"],
    ["Phase", `${st.phase || "Pending"}${spec.rollback ? " (rollback requested)" : ""}`],
    ["Target", `Kubernetes ${(spec.target && spec.target.kubernetesVersion) || "?"}`],
    ["Traffic", `green ${st.greenWeightPercent || 0} %, blue ${100 - (st.greenWeightPercent || 0)} %`],
    ["Blue / green", `${st.blueInstance || "?"} / ${st.greenInstance || "none yet"}`],
    ["Migration", m ? `${m.objectsApplied} of ${m.objectsTotal} applied, ${m.objectsReady} ready` : "not started"],
  ];
  return factList(rows);
}

/** status.history as a list: when, which phase, why; rollbacks and failures marked in words. */
function timeline(swap) {
  const history = (swap.status && swap.status.history) || [];
  const list = element("ol", "timeline");
  history.forEach((h, i) => {
    const family = familyOf(h.phase);
    const item = element("li", `f-${family}`);
    item.dataset.phase = h.phase;
    const next = history[i + 1];
    const lasted = next ? ` (${Math.round((ms(next.time) - ms(h.time)) / 1000)} s)` : "";
    const mark = element("span", "mark", MARK[family] || "\u2022");
    mark.setAttribute("aria-hidden", "true");
    item.append(
      mark,
      element("time", "", clock(ms(h.time))),
      element("strong", "", ` ${h.phase}`),
      element("span", "muted", `${lasted} \u2014 ${h.reason}${h.message ? ": " + h.message : ""}`),
    );
    list.append(item);
  });
  if (history.length === 0) list.append(element("li", "empty", "Not started."));
  return list;
}

function table(headers, rows, empty) {
  if (rows.length === 0) return element("p", "empty", empty);
  const t = element("table");
  const head = element("tr");
  head.append(...headers.map((h) => element("th", "", h)));
  t.append(element("thead"), element("tbody"));
  t.tHead.append(head);
  for (const row of rows) {
    const tr = element("tr");
    tr.append(...row.map((cell) => element("td", "", cell === undefined || cell === null ? "" : String(cell))));
    t.tBodies[0].append(tr);
  }
  return t;
}

/** Conditions (the health gates' verdicts), metric gates' last readings, hooks' answers. */
function gates(swap) {
  const st = swap.status || {};
  const div = element("div", "gates");
  div.append(
    element("h4", "", "Readings"),
    readingsTable(st.gateReadings || []),
    element("h4", "", "Conditions"),
    table(["Type", "Status", "Reason", "Message", "Since"],
      (st.conditions || []).map((c) => [c.type, c.status, c.reason, c.message, clock(ms(c.lastTransitionTime))]),
      "No conditions yet."),
    element("h4", "", "Metric gates"),
    table(["Gate", "Step", "Last value", "Result", "Passes in a row", "Evaluated", "Message"],
      (st.metricGates || []).map((g) => [g.name, g.step, g.lastValue, g.lastResult, g.consecutivePasses,
        g.lastEvaluatedAt ? clock(ms(g.lastEvaluatedAt)) : "", g.message]),
      "No metric gates evaluated."),
    element("h4", "", "Hooks"),
    table(["Hook", "Point", "Step", "State", "Attempts", "Last answer", "Message"],
      (st.hooks || []).map((h) => [h.name, h.point, h.step, h.state, h.attempts,
        h.lastAnswer ? JSON.stringify(h.lastAnswer) : "", h.message]),
      "No hooks called."),
  );
  return div;
}

/** status.gateReadings in words, newest first: the chart's lanes as a table. */
function readingsTable(readings) {
  const t = table(["Read", "Gate", "Value", "Bound", "Result", "Green weight"],
    [...readings].reverse().map((r) => [clock(ms(r.time)), gateName(r),
      r.value === undefined || r.value === null ? "not a number" : r.value,
      r.threshold, r.passed ? "passed" : "failed", `${r.weightPercent} %`]),
    "No readings yet (recorded when a traffic step ends, and when a gate fails).");
  t.classList.add("readings");
  const rows = t.tBodies ? [...t.tBodies[0].rows] : [];
  [...readings].reverse().forEach((r, i) => {
    rows[i].dataset.kind = r.kind;
    rows[i].dataset.result = r.passed ? "passed" : "failed";
    if (typeof r.value === "number") rows[i].dataset.value = String(r.value);
  });
  return t;
}

function eventTable(events) {
  return table(["Last seen", "Type", "Reason", "Note", "Count"],
    events.map((e) => [clock(eventTime(e)), e.type, e.reason, e.note, (e.series && e.series.count) || 1]),
    "No Events.");
}
