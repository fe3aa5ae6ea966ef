// Small DOM helpers: elements are built with textContent, never innerHTML from data,
// so a product or file name can't inject markup.

/** h("div.card.section", {onclick}, child, ...) → an element. */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs && (attrs instanceof Node || typeof attrs !== "object" || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      el.className += (el.className ? " " : "") + value;
    } else if (key === "style" && typeof value === "object") {
      // CSSOM, not a style attribute: allowed under the app's Content-Security-Policy.
      for (const [prop, v] of Object.entries(value)) {
        if (prop.startsWith("--")) el.style.setProperty(prop, v);
        else el.style[prop] = v;
      }
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key in el && typeof value !== "string") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const ICONS = {
  upload:
    '<path d="M12 16V4m0 0 4.5 4.5M12 4 7.5 8.5M4 15v3a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2v-3"/>',
  plus: '<path d="M12 5v14M5 12h14"/>',
  box: '<path d="M21 8 12 3 3 8v8l9 5 9-5V8Z"/><path d="m3 8 9 5 9-5M12 13v8"/>',
  camera:
    '<path d="M4 8a2 2 0 0 1 2-2h2l1.5-2h5L16 6h2a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2Z"/><circle cx="12" cy="12.5" r="3.5"/>',
  download: '<path d="M12 4v12m0 0 4.5-4.5M12 16l-4.5-4.5M4 20h16"/>',
  check: '<path d="m5 12.5 4.5 4.5L19 7.5"/>',
  x: '<path d="M6 6l12 12M18 6 6 18"/>',
  alert: '<path d="M12 8v5m0 3.5v.5M10.3 3.9 2.6 17.5A2 2 0 0 0 4.3 20.5h15.4a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0Z"/>',
  spark:
    '<path d="M12 3v4M12 17v4M3 12h4M17 12h4M5.6 5.6l2.8 2.8M15.6 15.6l2.8 2.8M18.4 5.6l-2.8 2.8M8.4 15.6l-2.8 2.8"/>',
  trash: '<path d="M4 7h16M10 11v6M14 11v6M6 7l1 12a2 2 0 0 0 2 2h6a2 2 0 0 0 2-2l1-12M9 7V4h6v3"/>',
  arrow: '<path d="M5 12h14m0 0-5-5m5 5-5 5"/>',
};

/** An inline SVG icon from the small set above (static markup, no data in it). */
export function icon(name) {
  const wrap = document.createElement("span");
  wrap.innerHTML = `<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">${ICONS[name]}</svg>`;
  return wrap.firstChild;
}

/** The packshot mark: a product on a sweep. `onDark`: a light tile for dark backgrounds. */
export function brandMark(onDark = false) {
  const [tile, product] = onDark ? ["#f6f5f2", "#17181a"] : ["#17181a", "#ffffff"];
  const wrap = document.createElement("span");
  wrap.innerHTML = `<svg class="brand-mark" viewBox="0 0 28 28" aria-hidden="true"><rect width="28" height="28" rx="8" fill="${tile}"/><path d="M6 19.5c4.5 0 7-1.2 16-1.2" stroke="#6d86f5" stroke-width="1.6" fill="none" stroke-linecap="round"/><rect x="10" y="7.5" width="8" height="9" rx="2" fill="${product}"/></svg>`;
  return wrap.firstChild;
}

export function spinner() {
  return h("span.spinner", { role: "status", "aria-label": "Loading" });
}

let toastBox;
/** A short message in the corner; `kind` "bad" for errors. */
export function toast(message, kind = "") {
  if (!toastBox) {
    toastBox = h("div.toasts", { "aria-live": "polite" });
    document.body.append(toastBox);
  }
  const el = h(`div.toast${kind ? "." + kind : ""}`, { role: kind === "bad" ? "alert" : "status" }, rich(message));
  toastBox.append(el);
  setTimeout(() => el.remove(), kind === "bad" ? 8000 : 4000);
}

/** Mark a button busy while `work` runs; returns what `work` returns. */
export async function busy(button, work) {
  const label = [...button.childNodes];
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.replaceChildren(spinner(), ...label);
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.replaceChildren(...label);
  }
}

export function plural(n, one, many = one + "s") {
  return `${n} ${n === 1 ? one : many}`;
}

export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function timeAgo(iso) {
  if (!iso) return "";
  const then = new Date(iso).getTime();
  if (!Number.isFinite(then)) return "";
  const s = (Date.now() - then) / 1000;
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(then).toLocaleDateString();
}

/** A labelled form field: the label names only the control; the hint describes it. */
export function field(control, label, hint) {
  const hintEl = hint ? h("span.hint", { id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div.field", h("label", { for: control.id }, label), control, hintEl);
}

/** A message with `code` spans (as the server writes them) as text and <code> nodes. */
export function rich(message) {
  return String(message ?? "")
    .split(/`([^`]+)`/)
    .map((part, i) => (i % 2 ? h("code", part) : part));
}

/** Mark the form fields an API message names (`steps`: …) as invalid; focus the first. */
export function markInvalid(form, message) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const names = [...String(message ?? "").matchAll(/`([\w.]+)`/g)].map((m) => m[1].split(".")[0]);
  const fields = names.map((n) => form.querySelector(`[name="${CSS.escape(n)}"]`)).filter(Boolean);
  for (const el of fields) {
    el.setAttribute("aria-invalid", "true");
    el.closest("details")?.setAttribute("open", ""); // a field under "Advanced" comes into view
  }
  fields[0]?.focus();
}
