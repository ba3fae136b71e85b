// Small SVG drawing helpers shared by the charts: elements with attributes (never a style
// attribute: the Content-Security-Policy forbids inline styles; classes in style.css colour
// them), a linear time scale and its labelled ticks.

const NS = "http://www.w3.org/2000/svg";

/** An SVG element `tag` with `attrs`, and a `<title>` (its tooltip and accessible name) if given. */
export function svg(tag, attrs = {}, title) {
  const e = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) e.setAttribute(key, String(value));
  if (title) {
    const t = document.createElementNS(NS, "title");
    t.textContent = title;
    e.append(t);
  }
  return e;
}

/** Maps times (ms) in [from, to] to x in [left, right]. */
export function timeScale(from, to, left, right) {
  const span = Math.max(1, to - from);
  return (t) => left + ((t - from) / span) * (right - left);
}

/**
 * One formatter for every label: `toLocaleTimeString` builds one per call, and a rollout's
 * timeline asks for thousands per redraw (most of its time with 1,000 clusters).
 */
const CLOCK = new Intl.DateTimeFormat([], {
  hour12: false, hour: "numeric", minute: "2-digit", second: "2-digit",
});

/** HH:MM:SS of a time (ms), local. */
export function clock(t) {
  return CLOCK.format(new Date(t));
}

/** Ticks with their clock times along y = `y`, about `n` of them. */
export function timeTicks(from, to, x, y, n = 5) {
  const group = svg("g", { class: "ticks", "aria-hidden": "true" });
  for (let i = 0; i <= n; i++) {
    const t = from + ((to - from) * i) / n;
    group.append(svg("line", { x1: x(t), x2: x(t), y1: y - 4, y2: y, class: "tick" }));
    const label = svg("text", { x: x(t), y: y + 12, "text-anchor": "middle", class: "tick-label" });
    label.textContent = clock(t);
    group.append(label);
  }
  return group;
}

/** Milliseconds of an API time, or NaN. */
export function ms(time) {
  return time ? Date.parse(time) : NaN;
}
