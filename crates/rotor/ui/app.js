// The dashboard's shell: sign in with a bearer token (checked by a SelfSubjectReview, kept in
// sessionStorage), switch between the views by the URL's fragment, sign out.

import { ApiError, clearToken, setToken, token, whoAmI } from "./api.js";
import { forgetPermissions, loadPermissions, may } from "./actions.js";
import { FleetView } from "./fleet.js";
import { RolloutsView } from "./rollouts.js";
import { SwapView } from "./swap.js";
import { SwapStore } from "./swaps.js";

/** The views by the URL's fragment; `#swap/NAME` opens the swap view on one swap. */
const VIEWS = ["fleet", "rollouts", "swap"];

const signin = document.querySelector("#signin");
const signinError = document.querySelector("#signin-error");
const session = document.querySelector("#session");
const user = document.querySelector("#user");
const main = document.querySelector("main");
const swaps = new SwapStore(main);
const fleet = new FleetView(document.querySelector("#fleet"), swaps);
const rollouts = new RolloutsView(document.querySelector("#rollouts"), swaps);
const swapView = new SwapView(document.querySelector("#swap"), swaps);

function show(fragment) {
  const [view, ...rest] = fragment.split("/");
  const name = VIEWS.includes(view) && (view !== "swap" || rest.length) ? view : VIEWS[0];
  for (const v of VIEWS) {
    document.querySelector(`#${v}`).hidden = v !== name;
    const link = document.querySelector(`#nav-${v}`);
    if (!link) continue;
    if (v === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (name === "swap") swapView.open(decodeURIComponent(rest.join("/")));
  else swapView.stop();
  // A hidden view does not redraw; shown, it draws what changed meanwhile.
  for (const view of [fleet, rollouts, swapView]) view.reveal();
}

function signedOut(message) {
  fleet.stop();
  rollouts.stop();
  swaps.stop();
  swapView.stop();
  forgetPermissions();
  document.querySelector("#role").textContent = "";
  main.hidden = true;
  session.hidden = true;
  signin.hidden = false;
  signinError.textContent = message || "";
  signinError.hidden = !message;
  document.querySelector("#token").focus();
}

async function signedIn() {
  let info;
  try {
    info = await whoAmI();
  } catch (error) {
    clearToken();
    const refused = error instanceof ApiError && error.status === 401;
    signedOut(refused ? "The API refused this token (401 Unauthorized)." : error.message);
    return;
  }
  user.textContent = info.username || "unknown user";
  try {
    await loadPermissions();
  } catch {
    forgetPermissions(); // Not known: offer no actions; the API would decide anyway.
  }
  const acts = may.rollouts || may.swaps || may.deleteSwaps;
  document.querySelector("#role").textContent = acts ? "(may act)" : "(read only)";
  signin.hidden = true;
  session.hidden = false;
  main.hidden = false;
  swaps.start();
  show(location.hash.slice(1));
  fleet.start(document.querySelector("#fleet-selector").value.trim());
  rollouts.start();
}

signin.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.querySelector("#token");
  const value = input.value.trim();
  input.value = "";
  if (!value) return;
  setToken(value);
  signedIn();
});

document.querySelector("#signout").addEventListener("click", () => {
  clearToken();
  signedOut("");
});

// A watch refused for good (the token expired, a binding was removed): say so where the
// views are; a 401 sends the user back to sign in.
main.addEventListener("denied", (event) => {
  if (event.detail && event.detail.status === 401) {
    clearToken();
    signedOut("The API no longer accepts this token (401 Unauthorized).");
  }
});

window.addEventListener("hashchange", () => {
  if (!main.hidden) show(location.hash.slice(1));
});

if (token()) signedIn();
else signedOut("");
