// The Kubernetes API as the dashboard reads it: every request carries the user's bearer token
// (kept in sessionStorage for this tab only), so the server's authentication and RBAC decide
// what the page may see. Lists are followed live by a watch, never polled.

const TOKEN_KEY = "rotor.token";

/** A watch that ends sooner than this after it opened counts as a failure (backs off). */
const SHORT_WATCH_MS = 1000;
const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30000;
/** The longest line a watch may send (one event); longer is a broken stream. */
const MAX_LINE_CHARS = 16 * 1024 * 1024;

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** A refusal or failure of the API: its HTTP status and the Status message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  /** 401 or 403: no retry will help until the user signs in with another token. */
  get denied() {
    return this.status === 401 || this.status === 403;
  }
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const status = await response.json();
    if (status && status.message) message = `${response.status}: ${status.message}`;
  } catch {
    // Not a Status body: the status line says enough.
  }
  return new ApiError(response.status, message);
}

/** `path` with the query `params` (entries whose value is empty are left out). */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** One request to the API with the token; throws an ApiError unless it succeeded. */
export async function request(
  path,
  { method = "GET", body, signal, contentType = "application/json" } = {},
) {
  const headers = { Accept: "application/json" };
  const bearer = token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = contentType;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    credentials: "omit",
    cache: "no-store",
  });
  if (!response.ok) throw await errorOf(response);
  return response;
}

/** Who the token belongs to (a SelfSubjectReview): `{username, groups}`. */
export async function whoAmI(signal) {
  const review = await request("/apis/authentication.k8s.io/v1/selfsubjectreviews", {
    method: "POST",
    body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
    signal,
  });
  const reply = await review.json();
  return (reply.status && reply.status.userInfo) || {};
}

/** The JSON events of a watch response, one per line, read from its body as they arrive. */
async function* events(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffered += value;
      let end;
      while ((end = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, end).trim();
        buffered = buffered.slice(end + 1);
        if (line) yield JSON.parse(line);
      }
      if (buffered.length > MAX_LINE_CHARS) throw new Error("a watch event beyond 16 MiB");
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/** A JSON merge patch of the object at `path` (what the CLI's operator commands send). */
export async function mergePatch(path, patch) {
  const reply = await request(path, {
    method: "PATCH",
    body: patch,
    contentType: "application/merge-patch+json",
  });
  return reply.json();
}

/** Whether the API would allow the user `verb` on `resource` of `group` (a SelfSubjectAccessReview). */
export async function allowed(group, resource, verb) {
  const review = await request("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
    method: "POST",
    body: {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SelfSubjectAccessReview",
      spec: { resourceAttributes: { group, resource, verb } },
    },
  });
  const reply = await review.json();
  return Boolean(reply.status && reply.status.allowed);
}

/**
 * Lists the collection at `path` (filtered by `selectors`: `labelSelector`, `fieldSelector`), then watches it from the
 * list's resourceVersion until `signal` aborts. The `sink` hears:
 * - `reset(items)` after every list,
 * - `apply(type, object)` for each ADDED, MODIFIED or DELETED event,
 * - `state(text, live)` when the connection changes,
 * - `failed(error)` once, when the API refuses for good (401, 403, a bad selector).
 * A watch the server closed resumes from the last resourceVersion seen; 410 Gone (that
 * version is no longer retained) lists again. Other failures retry with a bounded backoff.
 */
export async function follow(path, selectors, sink, signal) {
  let resourceVersion = null;
  let backoff = MIN_BACKOFF_MS;
  const retry = async (reason) => {
    sink.state(`reconnecting in ${Math.round(backoff / 1000)} s: ${reason}`, false);
    await pause(backoff, signal);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  };
  while (!signal.aborted) {
    try {
      if (resourceVersion === null) {
        const listed = await request(withQuery(path, selectors), { signal });
        const list = await listed.json();
        resourceVersion = list.metadata.resourceVersion;
        sink.reset(list.items || []);
      }
      const opened = Date.now();
      const watch = await request(
        withQuery(path, {
          ...selectors,
          watch: "1",
          resourceVersion,
          allowWatchBookmarks: "true",
        }),
        { signal },
      );
      sink.state("live", true);
      for await (const event of events(watch.body)) {
        if (event.type === "ERROR") {
          const status = event.object || {};
          throw new ApiError(status.code || 500, status.message || "watch error");
        }
        const object = event.object || {};
        if (object.metadata && object.metadata.resourceVersion) {
          resourceVersion = object.metadata.resourceVersion;
        }
        if (event.type !== "BOOKMARK") sink.apply(event.type, object);
      }
      // The server ended the watch (its timeout, a restart): resume where it stopped.
      if (Date.now() - opened < SHORT_WATCH_MS) {
        await retry("the watch closed at once");
      } else {
        backoff = MIN_BACKOFF_MS;
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status === 410) {
        resourceVersion = null; // Gone: list again.
        continue;
      }
      if (error instanceof ApiError && (error.denied || error.status === 400)) {
        sink.failed(error);
        return;
      }
      await retry(error.message);
    }
  }
}
