// The page's only door to the server: JSON over /v1 with the session cookie, the CSRF token
// on every mutating request, API errors turned into ApiError with a message a merchant can act on.

let csrfToken = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** What to tell the merchant for an error the server didn't phrase itself. */
function fallbackMessage(status) {
  if (status === 0) return "Can't reach the studio. Check that `packshot serve` is still running, then try again.";
  if (status === 401) return "Your session has ended. Sign in again with your API key.";
  if (status === 403) return "The page's security token expired. Reload the page and try again.";
  if (status === 404) return "That item doesn't exist any more. It may have been deleted.";
  if (status === 413) return "That upload is too large. Send fewer or smaller photos at a time.";
  if (status === 429) return "Too many requests in a short time. Wait a few seconds and try again.";
  if (status >= 500) return "The studio hit an internal error. Try again; if it persists, check the server log.";
  return `The request failed (HTTP ${status}).`;
}

async function toError(response) {
  let code = `http_${response.status}`;
  let message = "";
  try {
    const body = await response.json();
    const err = body && body.error;
    if (err) {
      code = err.code || code;
      message = err.message || "";
    } else if (body && typeof body.detail === "string") {
      message = body.detail;
    }
  } catch {
    // not JSON: keep the fallback
  }
  if (response.status === 429) {
    const wait = Number(response.headers.get("Retry-After"));
    if (wait > 0) message = `Too many requests. Try again in ${Math.ceil(wait)} s.`;
  }
  return new ApiError(response.status, code, message || fallbackMessage(response.status));
}

/** Signed out (401 anywhere): the app listens and shows the sign-in page. */
export const signedOut = new EventTarget();

export async function request(method, path, { json, body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal, credentials: "same-origin" });
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, "network", fallbackMessage(0));
  }
  if (!response.ok) {
    const error = await toError(response);
    if (response.status === 401 && !path.endsWith("/session")) {
      signedOut.dispatchEvent(new Event("signedout"));
    }
    throw error;
  }
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export const get = (path, opts) => request("GET", path, opts);
export const post = (path, json, opts) => request("POST", path, { ...opts, json });
export const del = (path, opts) => request("DELETE", path, opts);

/** `getOnce(path, fallback)`: a GET whose answer holds for the page's life (the lists a form
 *  offers), asked for once however many ask; an error answers `fallback` and asks again later. */
export function getOnce(path, fallback) {
  let pending = null;
  return async () => {
    pending ??= get(path);
    try {
      return await pending;
    } catch {
      pending = null;
      return fallback;
    }
  };
}

// ---- session ----

/** The signed-in merchant, or null. Keeps the CSRF token for later requests. */
export async function currentSession() {
  try {
    const session = await get("/v1/session");
    csrfToken = session.csrf_token;
    return session;
  } catch (exc) {
    if (exc.status === 401) return null;
    throw exc;
  }
}

export async function signIn(apiKey) {
  const session = await post("/v1/session", { key: apiKey });
  csrfToken = session.csrf_token;
  return session;
}

export async function signOut() {
  try {
    await del("/v1/session");
  } finally {
    csrfToken = null;
  }
}

// ---- uploads ----

/**
 * POST files as multipart with upload progress (fetch has none): onProgress(sent, total).
 * Resolves with the JSON body; rejects with ApiError.
 */
export function upload(path, files, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.withCredentials = true;
    xhr.setRequestHeader("Accept", "application/json");
    if (csrfToken) xhr.setRequestHeader("X-CSRF-Token", csrfToken);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress && onProgress(e.loaded, e.total);
    xhr.onerror = () => reject(new ApiError(0, "network", fallbackMessage(0)));
    xhr.onload = async () => {
      const response = new Response(xhr.responseText || null, {
        status: xhr.status,
        headers: { "Content-Type": xhr.getResponseHeader("Content-Type") || "" },
      });
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(xhr.responseText ? JSON.parse(xhr.responseText) : null);
      } else {
        if (xhr.status === 401) signedOut.dispatchEvent(new Event("signedout"));
        reject(await toError(response));
      }
    };
    xhr.send(form);
  });
}

// ---- live events ----

/**
 * Follow a job's server-sent events. `handlers[type](data)` for each event type; returns a
 * function that stops listening. The browser reconnects by itself (Last-Event-ID) when the
 * connection drops; `onLost` is called when it gives up.
 */
export function follow(path, handlers, onLost) {
  const source = new EventSource(path, { withCredentials: true });
  for (const [type, handler] of Object.entries(handlers)) {
    source.addEventListener(type, (e) => {
      let data = null;
      try {
        data = e.data ? JSON.parse(e.data) : null;
      } catch {
        data = e.data;
      }
      handler(data, e);
    });
  }
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED && onLost) onLost();
  };
  return () => source.close();
}
