// Operator actions. Each is the request the CLI makes (crates/rotor/src/cmd/rollout.rs): a JSON
// merge patch of a spec field the `operate` verb allows, or deleting a swap — so the server's
// RBAC and audit log apply as they do to `rotor approve`. Buttons are offered only when a
// SelfSubjectAccessReview says the user may act, and every action asks for confirmation.

import { allowed, mergePatch, request, withQuery } from "./api.js";
import { element } from "./live.js";

const GROUP = "rotor.dev";
export const ROLLOUTS = "/apis/rotor.dev/v1alpha1/rollouts";
export const SWAPS = "/apis/rotor.dev/v1alpha1/clusterswaps";
export const ROLLOUT_LABEL = "rotor.dev/rollout";

/** Happy-path phases before Decommissioning: blue can still take all traffic back. */
const ROLLBACK_PHASES = [
  "Pending", "Provisioning", "WaitingForGreen", "Migrating",
  "Verifying", "ShiftingTraffic", "Draining", "Retaining",
];

/** What the signed-in user may do; nothing until `loadPermissions` has asked the server. */
export const may = { rollouts: false, swaps: false, deleteSwaps: false };

export async function loadPermissions() {
  const [rollouts, swaps, deleteSwaps] = await Promise.all([
    allowed(GROUP, "rollouts", "operate"),
    allowed(GROUP, "clusterswaps", "operate"),
    allowed(GROUP, "clusterswaps", "delete"),
  ]);
  Object.assign(may, { rollouts, swaps, deleteSwaps });
}

export function forgetPermissions() {
  Object.assign(may, { rollouts: false, swaps: false, deleteSwaps: false });
}

/** Whether `rotor rollout rollback` would ask this swap to roll back (`rollback_requestable`). */
export function canRollBack(swap) {
  const phase = (swap.status && swap.status.phase) || "Pending";
  return ROLLBACK_PHASES.includes(phase) && !(swap.spec && swap.spec.rollback);
}

const rolloutPath = (name) => `${ROLLOUTS}/${encodeURIComponent(name)}`;
const swapPath = (name) => `${SWAPS}/${encodeURIComponent(name)}`;

export const act = {
  approve: (name, wave) => mergePatch(rolloutPath(name), { spec: { approvedThroughWave: wave } }),
  pause: (name) => mergePatch(rolloutPath(name), { spec: { paused: true } }),
  resume: (name) => mergePatch(rolloutPath(name), { spec: { paused: false } }),
  /** Adds `cluster` to `spec.skipClusters`, guarded by the resourceVersion the page read. */
  skip: (rollout, cluster) => {
    const skip = [...((rollout.spec && rollout.spec.skipClusters) || [])];
    if (!skip.includes(cluster)) skip.push(cluster);
    return mergePatch(rolloutPath(rollout.metadata.name), {
      metadata: { resourceVersion: rollout.metadata.resourceVersion },
      spec: { skipClusters: skip },
    });
  },
  /** Deletes a Failed or RolledBack swap; its rollout starts it again. */
  retry: (swapName) => request(swapPath(swapName), { method: "DELETE" }),
  rollBackSwap: (swapName) => mergePatch(swapPath(swapName), { spec: { rollback: true } }),
  /** Pauses the rollout, then asks each of its swaps that can still go back to roll back. */
  rollBackRollout: async (name) => {
    await act.pause(name);
    const selector = `${ROLLOUT_LABEL}=${name}`;
    const listed = await request(withQuery(SWAPS, { labelSelector: selector }));
    const swaps = ((await listed.json()).items || []).filter(canRollBack);
    for (const swap of swaps) await act.rollBackSwap(swap.metadata.name);
    return swaps.length;
  },
};

const dialog = () => document.querySelector("#confirm");
const statusLine = () => document.querySelector("#action-status");

/** Asks the user to confirm `question` in a modal dialog; resolves true on "Confirm". */
export function confirmAction(question, detail) {
  const d = dialog();
  d.querySelector("#confirm-question").textContent = question;
  d.querySelector("#confirm-detail").textContent = detail || "";
  d.returnValue = "";
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "confirm"), { once: true });
    d.showModal();
    d.querySelector("#confirm-cancel").focus();
  });
}

/** Focus `button`, or the button that replaced it in a redraw since (same key). */
function refocus(button) {
  if (button.isConnected) return button.focus();
  const again = [...document.querySelectorAll("button[data-key]")].find(
    (b) => b.dataset.key === button.dataset.key,
  );
  if (again) again.focus();
}

function report(text, failed) {
  const line = statusLine();
  line.textContent = text;
  line.dataset.state = failed ? "failed" : "done";
}

/**
 * A button that confirms `question` (with `detail`) and then runs `run`, saying in the page's
 * status line what came of it (`done(result)` words a success, the API's message a refusal).
 */
export function actionButton(label, question, detail, run, done) {
  const button = element("button", "action", label);
  button.type = "button";
  button.dataset.action = label;
  button.dataset.key = `${label}\u0000${question}`;
  button.addEventListener("click", async () => {
    if (!(await confirmAction(question, detail))) {
      button.focus();
      return;
    }
    button.disabled = true;
    try {
      report(done(await run()), false);
    } catch (error) {
      report(`${label} refused: ${error.message}`, true);
    } finally {
      button.disabled = false;
      refocus(button);
    }
  });
  return button;
}

/** A toolbar for the buttons, or null when there are none (a viewer's page). */
export function toolbar(label, buttons) {
  const present = buttons.filter(Boolean);
  if (present.length === 0) return null;
  const bar = element("div", "actions");
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", label);
  bar.append(...present);
  return bar;
}
