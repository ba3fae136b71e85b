// A rollout's state in words, from its spec and status: approval, bake and the time left,
// failure budgets used and allowed, maintenance windows. Pure functions of the object (and
// the time), so the rollouts view only arranges them.

/** A budget (`3` or `"5%"`) resolved against `total` clusters, percentages rounded down. */
export function resolveBudget(budget, total) {
  if (typeof budget === "number") return budget;
  const match = /^(\d+)%$/.exec(String(budget || "").trim());
  if (match) return Math.floor((total * Number(match[1])) / 100);
  const n = Number(budget);
  return Number.isInteger(n) ? n : null;
}

const failuresOf = (counts) => ((counts && counts.failed) || 0) + ((counts && counts.rolledBack) || 0);

/** "1 used of 2 allowed": the rollout's failures (Failed and RolledBack) against its budget. */
export function budgetText(rollout) {
  const spec = rollout.spec || {};
  const status = rollout.status || {};
  const total = (status.waves || []).reduce((n, w) => n + (w.clusters || []).length, 0);
  const allowed = resolveBudget(spec.failureBudget === undefined ? 0 : spec.failureBudget, total);
  const used = failuresOf(status.counts);
  const of = allowed === null ? `budget ${spec.failureBudget}` : `${allowed} allowed`;
  return `${used} used of ${of}${allowed !== null && used > allowed ? " (exceeded)" : ""}`;
}

/** A wave's own failure budget in words, or "" when it has none. */
export function waveBudgetText(specWave, wave) {
  if (!specWave || specWave.failureBudget === undefined || specWave.failureBudget === null) return "";
  const allowed = resolveBudget(specWave.failureBudget, (wave.clusters || []).length);
  return `wave failure budget: ${failuresOf(wave.counts)} used of ${allowed} allowed`;
}

/** The wave waiting for a person, as `{index, name}`, or null. */
export function waitingWave(rollout) {
  const waves = (rollout.status && rollout.status.waves) || [];
  const index = waves.findIndex((w) => w.phase === "WaitingForApproval");
  return index < 0 ? null : { index, name: waves[index].name };
}

/** The approval state: who lets waves start, and which wave waits now. */
export function approvalText(rollout) {
  const spec = rollout.spec || {};
  const waiting = waitingWave(rollout);
  if (waiting) return `waiting for approval of wave ${waiting.name} (#${waiting.index})`;
  const through = spec.approvedThroughWave;
  const manual = spec.approval === "Manual";
  if (!manual) return "automatic (after the bake, if the budget holds)";
  return through === undefined || through === null
    ? "manual; no wave approved beyond the first"
    : `manual; approved through wave #${through}`;
}

/** The wave baking now and the seconds left of its bake at `now`, or null. */
export function bakeState(rollout, now = Date.now()) {
  const spec = rollout.spec || {};
  const waves = (rollout.status && rollout.status.waves) || [];
  const wave = waves.find((w) => w.phase === "Baking");
  if (!wave) return null;
  const seconds = spec.bakeSecondsBetweenWaves || 0;
  const ended = Date.parse(wave.finishedAt || "");
  const left = Number.isNaN(ended) ? seconds : Math.max(0, Math.ceil((ended + seconds * 1000 - now) / 1000));
  return { wave: wave.name, seconds, left };
}

/** One maintenance window in words. */
export function windowText(w) {
  const zone = w.timeZone || "UTC";
  if (w.schedule) return `cron "${w.schedule}" for ${w.durationMinutes || 0} min (${zone})`;
  return `${(w.days || []).join(", ")} ${w.start}\u2013${w.end} (${zone})`;
}

/** The maintenance windows in words, and whether the controller last saw the time inside one. */
export function windowsText(rollout) {
  const windows = (rollout.spec && rollout.spec.maintenanceWindows) || [];
  if (windows.length === 0) return "none (swaps may start any time)";
  const conditions = (rollout.status && rollout.status.conditions) || [];
  const inside = conditions.find((c) => c.type === "InMaintenanceWindow");
  const now = inside ? (inside.status === "True" ? "; inside one now" : "; outside them now") : "";
  return windows.map(windowText).join("; ") + now;
}
