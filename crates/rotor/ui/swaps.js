// Every ClusterSwap, listed and watched once for the views that show swaps beside other kinds:
// a rollout's waves (each cluster's swap) and a cluster's page (its current and past swaps).

import { LiveView } from "./live.js";
import { ROLLOUT_LABEL, SWAPS } from "./actions.js";

export class SwapStore extends LiveView {
  constructor(root) {
    super(root, null);
    this.listeners = [];
  }

  start() {
    this.follow(SWAPS);
  }

  /** `listener()` runs after every change (at most once per frame). */
  subscribe(listener) {
    this.listeners.push(listener);
  }

  render() {
    for (const listener of this.listeners) listener();
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
