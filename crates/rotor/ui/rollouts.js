// The rollouts view: each Rollout with its phase and its waves, each wave a progress bar of
// its clusters (succeeded, running, rolled back, failed, skipped, pending) from the
// Rollout's status, with the same counts in words. Kept current by a watch on the Rollouts.

import { follow } from "./api.js";

const ROLLOUTS = "/apis/rotor.dev/v1alpha1/rollouts";

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

function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function countsText(counts) {
  const parts = SEGMENTS.filter((s) => counts[s.key] > 0).map((s) => `${counts[s.key]} ${s.label}`);
  const of = `${counts.size} cluster${counts.size === 1 ? "" : "s"}`;
  return parts.length ? `${of}: ${parts.join(", ")}` : of;
}

export class RolloutsView {
  constructor(root) {
    this.root = root;
    this.rollouts = new Map();
    this.controller = null;
    this.scheduled = false;
    this.list = root.querySelector("#rollouts-list");
    this.connection = root.querySelector("#rollouts-connection");
  }

  start() {
    this.stop();
    this.controller = new AbortController();
    const sink = {
      reset: (items) => {
        this.rollouts = new Map(items.map((r) => [r.metadata.name, r]));
        this.schedule();
      },
      apply: (type, rollout) => {
        if (type === "DELETED") this.rollouts.delete(rollout.metadata.name);
        else this.rollouts.set(rollout.metadata.name, rollout);
        this.schedule();
      },
      state: (text, live) => this.setConnection(text, live ? "live" : "retrying"),
      failed: (error) => {
        this.setConnection(error.message, error.denied ? "denied" : "failed");
        this.root.dispatchEvent(new CustomEvent("denied", { bubbles: true, detail: error }));
      },
    };
    this.setConnection("connecting", "connecting");
    follow(ROLLOUTS, "", sink, this.controller.signal);
  }

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
  }

  setConnection(text, state) {
    this.connection.textContent = text;
    this.connection.dataset.state = state;
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  render() {
    const rollouts = [...this.rollouts.values()].sort((a, b) =>
      a.metadata.name.localeCompare(b.metadata.name),
    );
    if (rollouts.length === 0) {
      this.list.replaceChildren(element("p", "empty", "No rollouts."));
      return;
    }
    this.list.replaceChildren(...rollouts.map((r) => this.renderRollout(r)));
  }

  renderRollout(rollout) {
    const spec = rollout.spec || {};
    const status = rollout.status || {};
    const article = element("article", "rollout");
    article.dataset.name = rollout.metadata.name;
    const target = (spec.target && spec.target.kubernetesVersion) || "";
    const heading = element("h3", "", rollout.metadata.name);
    const phase = status.phase || "Pending";
    const facts = [`Phase: ${phase}`];
    if (target) facts.push(`target Kubernetes ${target}`);
    if (spec.paused) facts.push("paused");
    const waves = status.waves || [];
    if (status.currentWave !== undefined && status.currentWave !== null && waves[status.currentWave]) {
      facts.push(`current wave: ${waves[status.currentWave].name}`);
    }
    const summary = element("p", `phase p-${phase}`, facts.join(" \u00b7 "));
    const list = element("ol", "waves");
    if (waves.length === 0) {
      list.append(element("li", "empty", "No plan yet: the controller has not planned the waves."));
    }
    waves.forEach((wave, index) => {
      list.append(this.renderWave(wave, index === status.currentWave, status.skipped || []));
    });
    article.append(heading, summary, list);
    return article;
  }

  renderWave(wave, current, skipped) {
    const counts = waveCounts(wave, skipped);
    const item = element("li", current ? "wave current" : "wave");
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
    item.append(title, bar, element("p", "wave-counts", words));
    return item;
  }
}
