// The rollouts view: each Rollout with its phase, approval, bake, failure budget and windows,
// its operator actions, and its waves, each a progress bar of its clusters (succeeded,
// running, rolled back, failed, skipped, pending) from the Rollout's status, with the same
// counts in words and, opened, each cluster with its swap (waveclusters.js). Kept current by
// watches on the Rollouts and the ClusterSwaps.

import { LiveView, element, factList } from "./live.js";
import { ROLLOUTS, act, actionButton, may, toolbar } from "./actions.js";
import { WaveClusters } from "./waveclusters.js";
import {
  approvalText, bakeState, budgetText, waitingWave, waveBudgetText, windowsText,
} from "./rolloutfacts.js";
import { GanttChart } from "./gantt.js";

/** The segments of a wave's bar, in the order they are drawn. */
const SEGMENTS = [
  { key: "succeeded", label: "succeeded" },
  { key: "running", label: "running" },
  { key: "rolledBack", label: "rolled back" },
  { key: "failed", label: "failed" },
  { key: "skipped", label: "skipped" },
  { key: "pending", label: "pending" },
];

/**
 * A wave's clusters counted by segment, from the wave's status and the rollout's skips. The
 * controller counts a cluster without a swap yet as Pending, like a swap not started, so
 * "pending" is every cluster of the wave whose swap has not begun.
 */
export function waveCounts(wave, skipped) {
  const c = wave.counts || {};
  const counts = {
    succeeded: c.succeeded || 0,
    running: c.inProgress || 0,
    rolledBack: c.rolledBack || 0,
    failed: c.failed || 0,
    skipped: skipped.filter((s) => s.wave === wave.name).length,
  };
  const size = (wave.clusters || []).length;
  const counted = Object.values(counts).reduce((a, b) => a + b, 0);
  counts.pending = Math.max(c.pending || 0, size - counted);
  counts.size = counted + counts.pending;
  return counts;
}

function countsText(counts) {
  const parts = SEGMENTS.filter((s) => counts[s.key] > 0).map((s) => `${counts[s.key]} ${s.label}`);
  const of = `${counts.size} cluster${counts.size === 1 ? "" : "s"}`;
  return parts.length ? `${of}: ${parts.join(", ")}` : of;
}

export class RolloutsView extends LiveView {
  constructor(root, swaps) {
    super(root, "#rollouts-connection");
    this.list = root.querySelector("#rollouts-list");
    this.swaps = swaps;
    this.open = new Set(); // "rollout\u0000wave" of the waves whose clusters are shown
    this.articles = new Map(); // rollout name → {article, head, gantt}, kept across redraws
    this.dirty = new Set(); // rollouts to draw again besides the changed ones; null: all
    swaps.subscribe((rollouts) => this.touch(rollouts));
    this.ticker = null;
  }

  /** Rollouts `names` (null: all) are to be drawn again at the next render. */
  touch(names) {
    if (names === null || this.dirty === null) this.dirty = null;
    else for (const n of names) this.dirty.add(n);
    this.schedule();
  }

  /** Lists and watches the Rollouts; a bake's time left is redrawn every second. */
  start() {
    this.follow(ROLLOUTS);
    clearInterval(this.ticker);
    this.ticker = setInterval(() => {
      const baking = [...this.objects.values()].filter((r) => bakeState(r));
      if (baking.length) this.touch(baking.map((r) => r.metadata.name));
    }, 1000);
  }

  stop() {
    super.stop();
    clearInterval(this.ticker);
  }

  /**
   * Draws again only the rollouts that changed, or whose swaps did (`changed`: rollout names;
   * null, or rollouts added or gone: all). A rollout of 1,000 clusters with 50 swaps running
   * changes often; the others on the page stay as they are.
   */
  render(changed) {
    const dirty = changed === null || this.dirty === null ? null : new Set([...changed, ...this.dirty]);
    this.dirty = new Set();
    const rollouts = [...this.objects.values()].sort((a, b) =>
      a.metadata.name.localeCompare(b.metadata.name),
    );
    if (rollouts.length === 0) {
      this.articles.clear();
      this.list.replaceChildren(element("p", "empty", "No rollouts."));
      return;
    }
    for (const name of [...this.articles.keys()]) {
      if (!this.objects.has(name)) this.articles.delete(name);
    }
    const drawn = [...this.list.children];
    const same = drawn.length === rollouts.length &&
      rollouts.every((r, i) => this.articles.has(r.metadata.name) &&
        this.articles.get(r.metadata.name).article === drawn[i]);
    for (const rollout of rollouts) {
      const name = rollout.metadata.name;
      if (!dirty || !this.articles.has(name) || dirty.has(name)) this.renderRollout(rollout);
    }
    if (!same) this.list.replaceChildren(...rollouts.map((r) => this.articles.get(r.metadata.name).article));
  }

  /** Draws `rollout` into its article (made once): its facts afresh, its waves and their
   * opened cluster lists and its timeline updated in place (kept elements keep the focus). */
  renderRollout(rollout) {
    const status = rollout.status || {};
    const name = rollout.metadata.name;
    let drawn = this.articles.get(name);
    if (!drawn) {
      const article = element("article", "rollout");
      article.dataset.name = name;
      const head = element("div", "rollout-head");
      const top = element("div", "rollout-facts");
      const list = element("ol", "waves");
      head.append(top, list);
      article.append(head);
      drawn = { article, top, list, waves: new Map(), gantt: new GanttChart() };
      this.articles.set(name, drawn);
    }
    const { article, top, gantt } = drawn;
    article.dataset.phase = status.phase || "Pending";
    const heading = element("h3", "", rollout.metadata.name);
    const actions = this.rolloutActions(rollout);
    top.replaceChildren(heading, this.facts(rollout), ...(actions ? [actions] : []));
    const swaps = this.swaps.ofRollout(name);
    this.renderWaves(rollout, drawn, swaps);
    const figure = gantt.update(rollout, swaps);
    if (figure && !figure.isConnected) article.append(figure);
    else if (!figure) gantt.figure.remove();
    return article;
  }

  /** Each wave of the plan into its item (made once per wave name), in the plan's order. */
  renderWaves(rollout, drawn, swaps) {
    const waves = (rollout.status && rollout.status.waves) || [];
    if (waves.length === 0) {
      drawn.waves.clear();
      drawn.list.replaceChildren(element("li", "empty", "No plan yet: the controller has not planned the waves."));
      return;
    }
    const items = waves.map((wave, index) => this.renderWave(rollout, wave, index, swaps, drawn.waves));
    for (const name of [...drawn.waves.keys()]) {
      if (!waves.some((w) => w.name === name)) drawn.waves.delete(name);
    }
    const same = items.length === drawn.list.children.length &&
      items.every((item, i) => drawn.list.children[i] === item);
    if (!same) drawn.list.replaceChildren(...items);
  }

  /** Phase, target, current wave, approval, bake, budget and windows as a description list. */
  facts(rollout) {
    const spec = rollout.spec || {};
    const status = rollout.status || {};
    const waves = status.waves || [];
    const current = waves[status.currentWave];
    const bake = bakeState(rollout);
    const rows = [
      ["Phase", `${status.phase || "Pending"}${spec.paused ? " (paused by spec.paused)" : ""}`],
      ["Target", `Kubernetes ${(spec.target && spec.target.kubernetesVersion) || "?"}`],
      ["Current wave", current ? `${current.name} (#${status.currentWave}), ${current.phase}` : "none"],
      ["Approval", approvalText(rollout)],
      ["Bake", bake ? `wave ${bake.wave} baking, ${bake.left} s left of ${bake.seconds} s` : `${spec.bakeSecondsBetweenWaves || 0} s between waves; none baking`],
      ["Failure budget", budgetText(rollout)],
      ["Maintenance windows", windowsText(rollout)],
    ];
    if ((status.parked || []).length) rows.push(["Parked before traffic", status.parked.join(", ")]);
    return factList(rows);
  }

  /** Approve, pause or resume, abort, roll back: offered only to who may `operate` Rollouts. */
  rolloutActions(rollout) {
    if (!may.rollouts) return null;
    const name = rollout.metadata.name;
    const spec = rollout.spec || {};
    const waiting = waitingWave(rollout);
    const final = ["Succeeded", "Failed", "RolledBack"].includes((rollout.status || {}).phase);
    const ok = (text) => () => text;
    return toolbar(`Actions on rollout ${name}`, [
      waiting && actionButton(`Approve wave ${waiting.name}`,
        `Approve wave ${waiting.name} of rollout ${name}?`,
        `Sets spec.approvedThroughWave to ${waiting.index}: its swaps may start.`,
        () => act.approve(name, waiting.index), ok(`rollout/${name} approved through wave ${waiting.index}`)),
      !final && (spec.paused
        ? actionButton("Resume", `Resume rollout ${name}?`, "Sets spec.paused to false.",
          () => act.resume(name), ok(`rollout/${name} resumed`))
        : actionButton("Pause", `Pause rollout ${name}?`,
          "Sets spec.paused: no new swaps start; running ones continue.",
          () => act.pause(name), ok(`rollout/${name} paused`))),
      !final && actionButton("Abort", `Abort rollout ${name}?`,
        "Pauses it and asks every swap still in progress to roll back (as rotor rollout abort).",
        () => act.rollBackRollout(name), (n) => `rollout/${name} aborted: ${n} swaps rolling back`),
      !final && actionButton("Roll back", `Roll back rollout ${name}?`,
        "Pauses it and asks every swap whose blue still exists to roll back (as rotor rollout rollback).",
        () => act.rollBackRollout(name), (n) => `rollout/${name}: ${n} swaps rolling back`),
    ]);
  }

  /** A wave's item: its title, bar and counts drawn afresh (a few elements), its cluster
   * list kept and updated (up to every cluster of the wave). */
  renderWave(rollout, wave, index, swaps, kept) {
    const status = rollout.status || {};
    const rolloutName = rollout.metadata.name;
    let drawn = kept.get(wave.name);
    if (!drawn) {
      const key = `${rolloutName}\u0000${wave.name}`;
      const opened = (open) => {
        if (open === this.open.has(key)) return;
        if (open) this.open.add(key);
        else this.open.delete(key);
        this.touch([rolloutName]);
      };
      const clusters = new WaveClusters(rolloutName, wave.name, opened, () => this.objects.get(rolloutName));
      const item = element("li");
      const summary = element("div", "wave-summary");
      item.append(summary, clusters.details);
      drawn = { item, summary, clusters, key };
      kept.set(wave.name, drawn);
    }
    const { item, summary, clusters, key } = drawn;
    const current = index === status.currentWave;
    const counts = waveCounts(wave, status.skipped || []);
    item.className = current ? "wave current" : "wave";
    item.dataset.wave = wave.name;
    item.dataset.phase = wave.phase || "Pending";
    const words = countsText(counts);
    const title = element("p", "wave-title");
    title.append(
      element("strong", "", wave.name),
      element("span", "", ` \u2014 ${wave.phase || "Pending"}${current ? " (current)" : ""}`),
    );
    const bar = element("div", "bar");
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", `${wave.name}: ${words}`);
    bar.title = words;
    for (const segment of SEGMENTS) {
      const n = counts[segment.key];
      if (n === 0) continue;
      const part = element("span", `seg g-${segment.key}`);
      part.dataset.segment = segment.key;
      part.dataset.count = String(n);
      // CSSOM, not a style attribute: the Content-Security-Policy allows no inline styles.
      part.style.flexGrow = String(n);
      bar.append(part);
    }
    const percent = counts.size ? Math.round((100 * counts.succeeded) / counts.size) : 0;
    item.dataset.succeededPercent = String(percent);
    const specWave = ((rollout.spec && rollout.spec.waves) || []).find((w) => w.name === wave.name);
    const budget = waveBudgetText(specWave, wave);
    summary.replaceChildren(title, bar, element("p", "wave-counts", budget ? `${words}; ${budget}` : words));
    clusters.update(rollout, wave, swaps, this.open.has(key));
    return item;
  }
}
