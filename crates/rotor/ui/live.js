// What every view of a collection shares: the objects by name, kept current by `follow`, a
// connection indicator, and one redraw per frame however many events arrive — none while the
// view is hidden (it redraws once shown), each told which objects changed since the last.

import { follow } from "./api.js";

/** A new element of `tag` with an optional class and text. */
export function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A view of one collection of the API; a subclass draws `objects` in `render()`. */
/** A `<dl class="facts">` of [term, value] rows, each value tagged with its term (tests find
 * facts by `data-fact`). */
export function factList(rows) {
  const dl = element("dl", "facts");
  for (const [term, value] of rows) {
    const dd = element("dd", "", value);
    dd.dataset.fact = term;
    dl.append(element("dt", "", term), dd);
  }
  return dl;
}

export class LiveView {
  constructor(root, connection) {
    this.root = root;
    this.objects = new Map(); // name → object
    this.controller = null;
    this.scheduled = false;
    /** Names changed since the last render; null when everything is to be drawn again. */
    this.changed = null;
    /** Whether a render was due while the view was hidden (it runs when `reveal`ed). */
    this.stale = false;
    this.connection = connection ? root.querySelector(connection) : null;
  }

  /**
   * Lists and watches the collection at `path` matching `selector`: a label selector ("" for
   * all) or an object of `labelSelector` and `fieldSelector`.
   */
  follow(path, selector = "") {
    const selectors = typeof selector === "string" ? { labelSelector: selector } : selector;
    this.stop();
    this.controller = new AbortController();
    this.objects.clear();
    this.changed = null;
    this.schedule();
    const sink = {
      reset: (items) => {
        this.objects = new Map(items.map((o) => [o.metadata.name, o]));
        this.changed = null;
        this.schedule();
      },
      apply: (type, object) => {
        const name = object.metadata.name;
        if (type === "DELETED") this.objects.delete(name);
        else this.objects.set(name, object);
        if (this.changed) this.changed.add(name);
        this.schedule();
      },
      state: (text, live) => this.setConnection(text, live ? "live" : "retrying"),
      failed: (error) => {
        this.setConnection(error.message, error.denied ? "denied" : "failed");
        this.root.dispatchEvent(new CustomEvent("denied", { bubbles: true, detail: error }));
      },
    };
    this.setConnection("connecting", "connecting");
    follow(path, selectors, sink, this.controller.signal);
  }

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
  }

  setConnection(text, state) {
    if (!this.connection) return;
    this.connection.textContent = text;
    this.connection.dataset.state = state;
  }

  /** Whether the view is on screen; a hidden view's renders wait for `reveal`. */
  get visible() {
    return !this.root.hidden;
  }

  /** The view was shown: draw what changed while it was hidden. */
  reveal() {
    if (this.stale) this.schedule();
  }

  /**
   * One render per frame however many events arrive, none while hidden: with 1,000 clusters
   * and 50 swaps running, events come by the hundred a second.
   */
  schedule() {
    if (!this.visible) {
      this.stale = true;
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      if (!this.visible) {
        this.stale = true;
        return;
      }
      this.stale = false;
      const changed = this.changed;
      this.changed = new Set();
      // A redraw replaces elements: keep the keyboard's focus on the one with the same key.
      const active = document.activeElement;
      const key = active && this.root.contains(active) ? active.dataset.key : undefined;
      this.render(changed);
      if (key && !this.root.contains(active)) {
        const again = [...this.root.querySelectorAll("[data-key]")].find((e) => e.dataset.key === key);
        if (again) again.focus({ preventScroll: true });
      }
    });
  }
}
