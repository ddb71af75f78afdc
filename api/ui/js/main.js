// The explorer's router: every view is a URL (#/traces?…, #/trace/ID?span=…, #/usage?…),
// so any screen can be shared or bookmarked.

import { ApiError, apiKey, keyless, signIn, signOut, useWithoutKey } from "./api.js";
import { clear, h } from "./dom.js";
import { renderSearch } from "./search.js";
import { renderTrace } from "./trace.js";
import { renderUsage } from "./usage.js";

export function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/traces";
  const [path, search = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(search) };
}

export function go(path, params) {
  const search = params ? new URLSearchParams(params).toString() : "";
  location.hash = `#${path}${search ? "?" + search : ""}`;
}

function header(view) {
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const who = clear(document.getElementById("who"));
  if (apiKey()) {
    who.append(h("span", {}, "Signed in with an API key"),
      h("button", { type: "button", onclick: () => { signOut(); go("/signin"); } }, "Sign out"));
  } else {
    who.append(h("a", { href: "#/signin" }, "Sign in"));
  }
}

function renderSignIn(main, params) {
  const next = params.get("next") || "#/traces";
  const input = h("input", { type: "password", id: "api-key", name: "key", autocomplete: "off", required: true, spellcheck: false });
  const why = params.get("why");
  const form = h("form", {
    class: "signin",
    onsubmit: (event) => {
      event.preventDefault();
      signIn(input.value);
      location.hash = next.startsWith("#/") ? next : "#/traces";
    },
  },
  h("label", { for: "api-key" }, "API key", input),
  h("p", { class: "muted" }, "The key stays in this browser tab's session storage and is sent only to this API, as a bearer token. It needs the traces scope for traces and the usage scope for usage."),
  h("button", { class: "primary", type: "submit" }, "Sign in"),
  h("button", { type: "button", id: "without-key", onclick: () => { useWithoutKey(); location.hash = next.startsWith("#/") ? next : "#/traces"; } },
    "Continue without a key (an API with API_AUTH_DISABLED)"));
  main.append(h("h1", {}, "Sign in"), why ? h("p", { class: "problem", role: "alert" }, why) : null, form);
  input.focus();
}

export function showError(main, error) {
  if (error instanceof ApiError && error.status === 401) {
    const next = location.hash;
    go("/signin", { next, why: apiKey() ? "The API did not accept this key." : "Sign in with an API key to read this." });
    return;
  }
  const detail = error instanceof ApiError
    ? `${error.problem?.title || "Error"} (${error.status}): ${error.message}`
    : `Error: ${error.message}`;
  main.append(h("p", { class: "problem", role: "alert" }, detail));
}

let rendering = 0;
async function route() {
  const turn = ++rendering;
  const { parts, params } = parseHash();
  const main = clear(document.getElementById("main"));
  const view = parts[0] || "traces";
  header(view === "trace" ? "traces" : view);
  const stillCurrent = () => turn === rendering;
  if (view !== "signin" && !apiKey() && !keyless()) {
    // Ask for the key before any data call, rather than letting the first one fail.
    go("/signin", { next: location.hash || "#/traces" });
    return;
  }
  try {
    if (view === "signin") renderSignIn(main, params);
    else if (view === "trace" && parts[1]) await renderTrace(main, parts[1], params, stillCurrent);
    else if (view === "usage") await renderUsage(main, params, stillCurrent);
    else await renderSearch(main, params, stillCurrent);
  } catch (error) {
    if (stillCurrent()) showError(main, error);
  }
}

window.addEventListener("hashchange", route);
route();  // module scripts run once the document is parsed
