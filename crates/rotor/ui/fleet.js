// The fleet view: every Cluster as a cell, grouped by cloud and region, its colour and symbol
// saying its state (in words too, for screen readers and tooltips), its label the Kubernetes
// version it runs. Kept current by a watch on the Clusters.

import { LiveView, element } from "./live.js";

const CLUSTERS = "/apis/rotor.dev/v1alpha1/clusters";
const CLOUD_LABEL = "rotor.dev/cloud";
const REGION_LABEL = "rotor.dev/region";

/** A cell's states, worst first (the order of the counts). */
export const STATES = [
  { key: "unreachable", label: "Unreachable", symbol: "\u2715" },
  { key: "degraded", label: "Degraded", symbol: "!" },
  { key: "swapping", label: "Swapping", symbol: "\u21bb" },
  { key: "stopped", label: "Stopped", symbol: "\u25a0" },
  { key: "pending", label: "Not adopted yet", symbol: "?" },
  { key: "healthy", label: "Healthy", symbol: "\u2713" },
];
const STATE = Object.fromEntries(STATES.map((s) => [s.key, s]));

/** Where a Cluster stands, from its status (what the controllers and discovery last saw). */
export function stateOf(cluster) {
  const spec = cluster.spec || {};
  const status = cluster.status || {};
  if (status.currentSwap) return STATE.swapping;
  if (spec.stopped) return STATE.stopped;
  const health = status.health;
  if (!status.activeInstance || !health) return STATE.pending;
  if (!health.reachable) return STATE.unreachable;
  const healthy =
    health.nodesReady === health.nodesTotal &&
    health.workloadsAvailable === health.workloadsTotal;
  return healthy ? STATE.healthy : STATE.degraded;
}

/** The version the cluster serves: its active instance's, else the one it asks for. */
export function versionOf(cluster) {
  const status = cluster.status || {};
  const active = (status.instances || []).find((i) => i.name === status.activeInstance);
  return (active && active.version) || (cluster.spec && cluster.spec.kubernetesVersion) || "?";
}

function placeOf(cluster) {
  const labels = cluster.metadata.labels || {};
  const spec = cluster.spec || {};
  return {
    cloud: labels[CLOUD_LABEL] || spec.provider || "unknown",
    region: spec.region || labels[REGION_LABEL] || "unknown",
  };
}

/** Clusters counted by state key, kept as cells change (no recount of the fleet per event). */
class Counts {
  constructor() {
    this.n = 0;
    this.byState = new Map();
  }

  add(key, by = 1) {
    this.n += by;
    const left = (this.byState.get(key) || 0) + by;
    if (left > 0) this.byState.set(key, left);
    else this.byState.delete(key);
  }

  /** "3 clusters: 2 healthy, 1 swapping", in the order of `STATES`. */
  text() {
    const parts = STATES.filter((s) => this.byState.has(s.key)).map(
      (s) => `${this.byState.get(s.key)} ${s.label.toLowerCase()}`,
    );
    const n = this.n;
    return `${n} cluster${n === 1 ? "" : "s"}${parts.length ? ": " + parts.join(", ") : ""}`;
  }
}

const placeKey = ({ cloud, region }) => `${cloud}\u0000${region}`;

export class FleetView extends LiveView {
  constructor(root, swaps) {
    super(root, "#fleet-connection");
    this.swaps = swaps;
    swaps.subscribe(() => {
      if (this.selected && this.visible) this.renderDetail();
    });
    this.cells = new Map(); // name → its button, reused across renders (keeps focus)
    this.drawn = new Map(); // name → {place, state} as its cell shows it
    this.places = new Map(); // placeKey → {counts, text}: each group's counts and their <p>
    this.total = new Counts();
    this.selected = null;
    this.current = null; // the cell Tab reaches (roving tabindex); arrows move it
    this.summary = root.querySelector("#fleet-summary");
    this.groups = root.querySelector("#fleet-groups");
    this.detail = root.querySelector("#fleet-detail");
    this.legend = root.querySelector("#fleet-legend");
    this.renderLegend();
    this.groups.addEventListener("keydown", (event) => this.move(event));
    root.querySelector("#fleet-filter").addEventListener("submit", (event) => {
      event.preventDefault();
      this.start(root.querySelector("#fleet-selector").value.trim());
    });
  }

  renderLegend() {
    this.legend.replaceChildren(
      ...STATES.map((s) => {
        const item = element("li", `cell-key s-${s.key}`);
        item.append(element("span", "symbol", s.symbol), element("span", "", s.label));
        item.firstChild.setAttribute("aria-hidden", "true");
        return item;
      }),
    );
  }

  /** The Clusters by name. */
  get clusters() {
    return this.objects;
  }

  /** Shown again: the cells changed meanwhile, and the open cluster's swaps. */
  reveal() {
    super.reveal();
    if (this.selected && this.visible) this.renderDetail();
  }

  /** Lists and watches the Clusters matching `selector` (a label selector; "" for all). */
  start(selector = "") {
    this.follow(CLUSTERS, selector);
  }

  cellFor(cluster) {
    const name = cluster.metadata.name;
    let cell = this.cells.get(name);
    if (!cell) {
      cell = element("button", "cell");
      cell.type = "button";
      cell.dataset.name = name;
      cell.addEventListener("click", () => this.select(name));
      cell.addEventListener("focus", () => {
        this.current = name;
      });
      this.cells.set(name, cell);
    }
    const state = stateOf(cluster);
    const version = versionOf(cluster);
    const shown = `${state.key}\u0000${version}`;
    if (cell.dataset.shown === shown) return cell; // unchanged: no DOM write
    cell.dataset.shown = shown;
    const words = `${name}: ${state.label}, Kubernetes ${version}`;
    cell.className = `cell s-${state.key}`;
    cell.dataset.state = state.key;
    cell.title = words;
    cell.setAttribute("aria-label", words);
    const symbol = element("span", "symbol", state.symbol);
    symbol.setAttribute("aria-hidden", "true");
    cell.replaceChildren(symbol, element("span", "version", version));
    return cell;
  }

  /**
   * Redraws what `changed` (names; null: everything) touched: a cluster whose cell stays in its
   * group updates that cell and the counts only; one added, removed or moved to another group
   * draws the groups again (cells reused).
   */
  render(changed) {
    if (changed && this.updateCells(changed)) {
      if (this.selected && changed.has(this.selected)) this.renderDetail();
      return;
    }
    this.renderAll();
  }

  /** Updates the cells of `changed` in place; false when the groups must be drawn again. */
  updateCells(changed) {
    for (const name of changed) {
      const cluster = this.clusters.get(name);
      const drawn = this.drawn.get(name);
      if (!cluster || !drawn || placeKey(placeOf(cluster)) !== drawn.place) return false;
    }
    for (const name of changed) {
      const cluster = this.clusters.get(name);
      const drawn = this.drawn.get(name);
      const state = stateOf(cluster).key;
      this.cellFor(cluster);
      if (state === drawn.state) continue;
      const place = this.places.get(drawn.place);
      place.counts.add(drawn.state, -1);
      place.counts.add(state);
      place.text.textContent = place.counts.text();
      this.total.add(drawn.state, -1);
      this.total.add(state);
      drawn.state = state;
    }
    this.summary.textContent = this.total.text();
    return true;
  }

  /** Every group and cell drawn again (cells reused), the counts recounted. */
  renderAll() {
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.name
      : undefined;
    for (const name of [...this.cells.keys()]) {
      if (!this.clusters.has(name)) this.cells.delete(name);
    }
    this.drawn.clear();
    this.places.clear();
    this.total = new Counts();
    const byPlace = new Map(); // placeKey → {cloud, region, clusters}
    for (const cluster of this.clusters.values()) {
      const { cloud, region } = placeOf(cluster);
      const key = placeKey({ cloud, region });
      if (!byPlace.has(key)) byPlace.set(key, { cloud, region, clusters: [] });
      byPlace.get(key).clusters.push(cluster);
    }
    const places = [...byPlace.values()].sort(
      (a, b) => a.cloud.localeCompare(b.cloud) || a.region.localeCompare(b.region),
    );
    const sections = [];
    for (const place of places) {
      place.clusters.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
      const section = element("section", "group");
      section.dataset.cloud = place.cloud;
      section.dataset.region = place.region;
      const heading = element("h3", "", `${place.cloud} \u00b7 ${place.region}`);
      const key = placeKey(place);
      const tally = new Counts();
      for (const c of place.clusters) {
        const state = stateOf(c).key;
        tally.add(state);
        this.total.add(state);
        this.drawn.set(c.metadata.name, { place: key, state });
      }
      const counts = element("p", "counts", tally.text());
      this.places.set(key, { counts: tally, text: counts });
      const grid = element("div", "cells");
      grid.setAttribute("role", "group");
      grid.setAttribute("aria-label", `${place.cloud} ${place.region}`);
      grid.append(...place.clusters.map((c) => this.cellFor(c)));
      section.append(heading, counts, grid);
      sections.push(section);
    }
    this.groups.replaceChildren(...sections);
    this.rove();
    this.summary.textContent = this.total.text();
    if (focused && this.cells.has(focused)) this.cells.get(focused).focus({ preventScroll: true });
    this.renderDetail();
  }

  /** One cell in the Tab order (the last one focused, else the first); the others by arrows. */
  rove() {
    if (!this.cells.has(this.current)) this.current = null;
    const cells = this.groups.querySelectorAll(".cell");
    if (!this.current && cells.length) this.current = cells[0].dataset.name;
    for (const cell of cells) cell.tabIndex = cell.dataset.name === this.current ? 0 : -1;
  }

  /** Arrow keys, Home and End move the focus through the cells, across groups. */
  move(event) {
    const cells = [...this.groups.querySelectorAll(".cell")];
    const at = cells.indexOf(document.activeElement);
    if (at < 0) return;
    const to = {
      ArrowRight: at + 1,
      ArrowDown: at + 1,
      ArrowLeft: at - 1,
      ArrowUp: at - 1,
      Home: 0,
      End: cells.length - 1,
    }[event.key];
    if (to === undefined || to < 0 || to >= cells.length) return;
    event.preventDefault();
    this.current = cells[to].dataset.name;
    this.rove();
    cells[to].focus();
  }

  select(name) {
    this.selected = name;
    this.renderDetail();
  }

  /** The selected cluster in words: state, version, health, instances, current swap. */
  renderDetail() {
    const cluster = this.selected && this.clusters.get(this.selected);
    if (!cluster) {
      this.detail.hidden = true;
      return;
    }
    const status = cluster.status || {};
    const health = status.health;
    const { cloud, region } = placeOf(cluster);
    const rows = [
      ["State", stateOf(cluster).label],
      ["Version", versionOf(cluster)],
      ["Where", `${cloud} \u00b7 ${region}`],
      ["Current swap", status.currentSwap || "none"],
    ];
    if (health) {
      rows.push(
        ["Reachable", health.reachable ? "yes" : "no"],
        ["Nodes ready", `${health.nodesReady} of ${health.nodesTotal}`],
        ["Workloads available", `${health.workloadsAvailable} of ${health.workloadsTotal}`],
      );
    }
    for (const instance of status.instances || []) {
      rows.push([`Instance ${instance.name}`, `${instance.phase}, Kubernetes ${instance.version}`]);
    }
    for (const c of status.conditions || []) {
      rows.push([`${c.type}`, `${c.status}${c.reason ? ", " + c.reason : ""}${c.message ? ": " + c.message : ""}`]);
    }
    const list = element("dl");
    for (const [term, value] of rows) list.append(element("dt", "", term), element("dd", "", value));
    this.detail.replaceChildren(element("h3", "", cluster.metadata.name), list, this.swapList(cluster));
    this.detail.hidden = false;
  }

  /** The cluster's swaps, current and past, newest first, each a link to its swap view. */
  swapList(cluster) {
    const swaps = this.swaps.ofCluster(cluster.metadata.name);
    const section = element("section", "cluster-swaps");
    section.append(element("h4", "", `Swaps (${swaps.length})`));
    const list = element("ul");
    for (const swap of swaps) {
      const st = swap.status || {};
      const item = element("li");
      const link = element("a", "swap-link", swap.metadata.name);
      link.href = `#swap/${encodeURIComponent(swap.metadata.name)}`;
      const current = (cluster.status || {}).currentSwap === swap.metadata.name ? ", current" : "";
      const target = (swap.spec.target && swap.spec.target.kubernetesVersion) || "?";
      item.append(link, element("span", "", ` \u2014 ${st.phase || "Pending"}${current}, to Kubernetes ${target}`));
      list.append(item);
    }
    if (swaps.length === 0) list.append(element("li", "empty", "No swaps."));
    section.append(list);
    return section;
  }
}
