// Every ClusterSwap, listed and watched once for the views that show swaps beside other kinds:
// a rollout's waves (each cluster's swap) and a cluster's page (its current and past swaps).

import { LiveView } from "./live.js";
import { ROLLOUT_LABEL, SWAPS } from "./actions.js";

export class SwapStore extends LiveView {
  constructor(root) {
    super(root, null);
    this.listeners = [];
    this.rolloutOf = new Map(); // swap name → its rollout, also for swaps since deleted
  }

  start() {
    this.follow(SWAPS);
  }

  /**
   * `listener(rollouts)` runs after every change (at most once per frame), told the rollouts
   * whose swaps changed (a Set of names; null: any may have).
   */
  subscribe(listener) {
    this.listeners.push(listener);
  }

  render(changed) {
    let rollouts = null;
    if (changed) {
      rollouts = new Set();
      for (const name of changed) {
        const swap = this.objects.get(name);
        const rollout = swap ? (swap.metadata.labels || {})[ROLLOUT_LABEL] : this.rolloutOf.get(name);
        if (rollout) rollouts.add(rollout);
        if (swap && rollout) this.rolloutOf.set(name, rollout);
        else this.rolloutOf.delete(name);
      }
    } else {
      this.rolloutOf.clear();
      for (const swap of this.objects.values()) {
        const rollout = (swap.metadata.labels || {})[ROLLOUT_LABEL];
        if (rollout) this.rolloutOf.set(swap.metadata.name, rollout);
      }
    }
    for (const listener of this.listeners) listener(rollouts);
  }

  /** The swaps of Cluster `name`, newest first. */
  ofCluster(name) {
    return [...this.objects.values()]
      .filter((s) => s.spec && s.spec.clusterRef === name)
      .sort((a, b) => (b.metadata.creationTimestamp || "").localeCompare(a.metadata.creationTimestamp || ""));
  }

  /** Rollout `name`'s swaps by cluster. */
  ofRollout(name) {
    const byCluster = new Map();
    for (const swap of this.objects.values()) {
      const labels = swap.metadata.labels || {};
      if (labels[ROLLOUT_LABEL] === name) byCluster.set(swap.spec.clusterRef, swap);
    }
    return byCluster;
  }
}
