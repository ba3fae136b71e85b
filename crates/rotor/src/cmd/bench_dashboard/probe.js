// Installed by `rotor bench dashboard` into a dashboard page; no part of the dashboard. Records
// when the DOM shows each cluster's state (a fleet cell's data-state), each swap's last phase
// (the last segment of its row in a rollout's timeline) and, in the swap view, its swap's last
// phase (the phase timeline's last entry) and green's weight, at the MutationObserver callback
// after the render that wrote it (Date.now(), comparable with the bench's clock), and the main
// thread's long tasks (PerformanceObserver "longtask": over 50 ms) from now on.
(() => {
  const since = performance.now();
  const probe = { records: [], longTasks: [], last: new Map() };
  window.__rotorBench = probe;
  const note = (key, value) => {
    if (value === undefined || probe.last.get(key) === value) return;
    probe.last.set(key, value);
    probe.records.push([key, value, Date.now()]);
  };
  const within = (node, css) => (node.matches(css) ? [node] : node.querySelectorAll(css));
  const scan = (node) => {
    if (node.nodeType !== Node.ELEMENT_NODE) return;
    for (const cell of within(node, ".cell[data-name]")) {
      note(`cluster/${cell.dataset.name}`, cell.dataset.state);
    }
    for (const row of within(node, "g[data-cluster]")) {
      const phases = row.querySelectorAll("rect[data-phase]");
      if (phases.length) note(`swap/${row.dataset.cluster}`, phases[phases.length - 1].dataset.phase);
    }
  };
  // The swap view draws its body afresh on a change: read it once per callback.
  const swapView = () => {
    const body = document.querySelector("#swap:not([hidden]) #swap-body");
    const cluster = body && body.querySelector('[data-fact="Cluster"]');
    if (!cluster) return;
    const phases = body.querySelectorAll(".timeline li[data-phase]");
    if (phases.length) note(`phase/${cluster.textContent}`, phases[phases.length - 1].dataset.phase);
    const traffic = body.querySelector('[data-fact="Traffic"]');
    const weight = traffic && /green (\d+) %/.exec(traffic.textContent);
    if (weight) note(`weight/${cluster.textContent}`, weight[1]);
  };
  scan(document.body);
  swapView();
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.type === "attributes") scan(m.target);
      else for (const n of m.addedNodes) scan(n);
    }
    swapView();
  }).observe(document.body, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"],
  });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.startTime >= since) probe.longTasks.push(e.duration);
    }
  }).observe({ type: "longtask", buffered: true });
})();
