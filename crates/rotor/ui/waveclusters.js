// A wave's clusters, each with its swap (a link to the swap view) and, for an operator, retry
// and skip: drawn only while opened (a wave may hold 1,000 clusters or more), kept across
// redraws, and on a change only the rows whose swap phase or skip changed are drawn again.

import { element } from "./live.js";
import { act, actionButton, may, toolbar } from "./actions.js";

export class WaveClusters {
  /**
   * The list of wave `wave` of rollout `name`; `opened(isOpen)` runs when a person opens or
   * closes it, `current()` is the rollout as last read (the Skip action's guard).
   */
  constructor(name, wave, opened, current) {
    this.name = name;
    this.current = current;
    this.details = element("details", "wave-clusters");
    const summary = element("summary", "", `Clusters of ${wave}`);
    summary.dataset.key = `summary\u0000${name}\u0000${wave}`;
    this.details.append(summary);
    this.details.addEventListener("toggle", () => opened(this.details.open));
    this.list = null;
    this.rows = new Map(); // cluster → {row, key}
    this.order = ""; // the clusters drawn, in order, as one string
  }

  /** Draws the wave's clusters if opened (only the rows that changed), else drops them. */
  update(rollout, wave, swaps, open) {
    if (this.details.open !== open) this.details.open = open;
    if (!open) {
      if (this.list) this.list.remove();
      this.list = null;
      this.rows.clear();
      this.order = "";
      return this.details;
    }
    if (!this.list) {
      this.list = element("ul", "clusters");
      this.details.append(this.list);
    }
    const skipped = new Map(((rollout.status && rollout.status.skipped) || []).map((s) => [s.cluster, s]));
    const clusters = wave.clusters || [];
    const rows = new Map();
    for (const cluster of clusters) {
      const swap = swaps.get(cluster);
      const skip = skipped.get(cluster);
      const key = rowKey(swap, skip);
      const drawn = this.rows.get(cluster);
      if (drawn && drawn.key === key) {
        rows.set(cluster, drawn);
        continue;
      }
      const row = this.row(cluster, swap, skip);
      if (drawn) drawn.row.replaceWith(row);
      rows.set(cluster, { row, key });
    }
    this.rows = rows;
    const order = clusters.join("\u0000");
    if (order !== this.order) {
      this.order = order;
      this.list.replaceChildren(...clusters.map((c) => rows.get(c).row));
    }
    return this.details;
  }

  row(cluster, swap, skipped) {
    const row = element("li", "cluster-row");
    row.dataset.cluster = cluster;
    row.append(element("span", "name", cluster));
    const phase = swap ? phaseOf(swap) : null;
    if (swap) {
      const link = element("a", "swap-link", `swap ${phase}`);
      link.href = `#swap/${encodeURIComponent(swap.metadata.name)}`;
      link.setAttribute("aria-label", `swap ${swap.metadata.name} of ${cluster}: ${phase}`);
      row.append(link);
    } else {
      row.append(element("span", "muted", skipped ? `skipped: ${skipped.reason}` : "no swap yet"));
    }
    const name = this.name;
    const retryable = swap && (phase === "Failed" || phase === "RolledBack");
    const actions = toolbar(`Actions on ${cluster}`, [
      retryable && may.deleteSwaps && actionButton("Retry", `Retry cluster ${cluster}?`,
        `Deletes its ${phase} swap ${swap.metadata.name}; rollout ${name} starts it again.`,
        () => act.retry(swap.metadata.name), () => `cluster ${cluster}: swap removed; its rollout starts it again`),
      !skipped && phase !== "Succeeded" && may.rollouts && actionButton("Skip", `Skip cluster ${cluster}?`,
        `Adds it to spec.skipClusters of rollout ${name}: no swap starts for it.`,
        () => act.skip(this.current(), cluster), () => `cluster ${cluster} skipped by rollout/${name}`),
    ]);
    if (actions) row.append(actions);
    return row;
  }
}

function phaseOf(swap) {
  return (swap.status && swap.status.phase) || "Pending";
}

/** What a row shows: its swap's name and phase, or its skip; the same key, the same row. */
function rowKey(swap, skipped) {
  const s = swap ? `${swap.metadata.name}\u0000${phaseOf(swap)}` : "";
  return `${s}\u0000${skipped ? skipped.reason : ""}`;
}
