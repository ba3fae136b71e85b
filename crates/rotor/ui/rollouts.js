// The rollouts view: each Rollout with its phase and its waves, each wave a progress bar of
// its clusters (succeeded, running, rolled back, failed, skipped, pending) from the
// Rollout's status, with the same counts in words. Kept current by a watch on the Rollouts.

import { LiveView, element } from "./live.js";

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

function countsText(counts) {
  const parts = SEGMENTS.filter((s) => counts[s.key] > 0).map((s) => `${counts[s.key]} ${s.label}`);
  const of = `${counts.size} cluster${counts.size === 1 ? "" : "s"}`;
  return parts.length ? `${of}: ${parts.join(", ")}` : of;
}

export class RolloutsView extends LiveView {
  constructor(root) {
    super(root, "#rollouts-connection");
    this.list = root.querySelector("#rollouts-list");
  }

  /** Lists and watches the Rollouts. */
  start() {
    this.follow(ROLLOUTS);
  }

  render() {
    const rollouts = [...this.objects.values()].sort((a, b) =>
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
