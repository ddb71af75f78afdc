// Every data call of the explorer goes through here: to this origin's /api/v1 only, with
// the API key from sessionStorage (never localStorage, never a cookie).

const KEY = "observatory.apiKey";
export const BASE = "/api/v1";

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

const KEYLESS = "observatory.keyless";

export function signIn(key) {
  sessionStorage.setItem(KEY, key.trim());
  sessionStorage.removeItem(KEYLESS);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(KEYLESS);
}

// For an API that runs with API_AUTH_DISABLED: use it without a key, this tab only.
export function useWithoutKey() {
  sessionStorage.setItem(KEYLESS, "1");
}

export function keyless() {
  return sessionStorage.getItem(KEYLESS) === "1";
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem && problem.detail ? problem.detail : `the API answered ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== undefined && one !== null && one !== "") search.append(name, String(one));
    }
  }
  return search;
}

export async function get(path, params) {
  const search = query(params).toString();
  const headers = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(`${BASE}${path}${search ? "?" + search : ""}`, {
    headers, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
  });
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}
