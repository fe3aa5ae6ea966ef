// packshot studio: the page's entry point. Hash routes (#/ and #/products/ID), the shell,
// sign-in and the products list; the product page itself is in product.js.

import * as api from "./api.js";
import { brandMark, busy, field, h, rich, icon, mount, plural, spinner, timeAgo, toast } from "./dom.js";
import { cataloguePage } from "./catalogue.js";
import { productPage } from "./product.js";

const root = document.getElementById("app");
let session = null;
let leaveView = null; // the current view's clean-up (closes live event streams)

// ---------- boot and routing ----------

async function boot() {
  mount(root, h("div.loading", spinner(), "Opening the studio…"));
  try {
    session = await api.currentSession();
  } catch (exc) {
    mount(root, fatal(exc, boot));
    return;
  }
  route();
}

function route() {
  if (leaveView) leaveView();
  leaveView = null;
  if (!session) {
    document.title = "Sign in · packshot studio";
    mount(root, signInPage());
    root.querySelector("input")?.focus();
    return;
  }
  const hash = location.hash.replace(/^#/, "") || "/";
  const main = h("main", { id: "main" });
  mount(root, shell(), main);
  const match = hash.match(/^\/products\/([\w-]+)$/);
  if (match) {
    leaveView = productPage(main, match[1]);
  } else if (hash === "/catalogue") {
    leaveView = cataloguePage(main);
  } else {
    document.title = "Products · packshot studio";
    productsPage(main);
  }
  window.scrollTo(0, 0);
}

window.addEventListener("hashchange", route);
api.signedOut.addEventListener("signedout", () => {
  if (!session) return;
  session = null;
  toast("Your session ended. Sign in again to continue.", "bad");
  route();
});

function fatal(exc, retry) {
  return h(
    "main",
    h(
      "div.card.empty",
      h("div.art", icon("alert")),
      h("h2", "The studio isn't answering"),
      h("p", rich(exc.message)),
      h("button.btn.primary", { type: "button", onclick: retry }, "Try again"),
    ),
  );
}

// ---------- shell ----------

function shell() {
  const name = session.merchant?.name || "Merchant";
  return h(
    "header.topbar",
    h(
      "div.topbar-inner",
      h("a.brand", { href: "#/" }, brandMark(), "packshot", h("span.brand-tag", "studio")),
      h("nav.topnav", { "aria-label": "Studio" }, h("a", { href: "#/" }, "Products"), h("a", { href: "#/catalogue" }, "Catalogue")),
      h("div.spacer"),
      h(
        "div.account",
        h("span.avatar", { "aria-hidden": "true" }, name.slice(0, 1)),
        h("span.who", { "data-testid": "merchant-name" }, name),
        h(
          "button.btn.ghost.small",
          {
            type: "button",
            onclick: async () => {
              await api.signOut().catch(() => {});
              session = null;
              location.hash = "#/";
              route();
            },
          },
          "Sign out",
        ),
      ),
    ),
  );
}

// ---------- sign in ----------

function signInPage() {
  const key = h("input.input", {
    id: "api-key",
    name: "api_key",
    type: "password",
    autocomplete: "current-password",
    spellcheck: "false",
    placeholder: "pk_live_…",
    required: true,
  });
  const error = h("div.notice.bad", { role: "alert", hidden: true });
  const submit = h("button.btn.primary", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    {
      novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        error.hidden = true;
        key.removeAttribute("aria-invalid");
        const value = key.value.trim();
        if (!value) {
          showError("Paste the API key you were given. It starts with pk_live_.");
          return;
        }
        try {
          session = await busy(submit, () => api.signIn(value));
        } catch (exc) {
          showError(
            exc.status === 401
              ? "That key wasn't recognised. Check it was copied whole (it starts with pk_live_), or ask for a new key."
              : exc.message,
          );
          return;
        }
        route();
      },
    },
    h("h1", "Sign in to your studio"),
    h("p.lead", "Use the API key you were given when your account was created."),
    h(
      "div.stack",
      field(key, "API key"),
      error,
      submit,
    ),
    h(
      "p.foot",
      "Lost your key? Keys are shown only once. Your administrator can make a new one with ",
      h("code", "packshot merchants create"),
      ".",
    ),
  );
  function showError(message) {
    mount(error, icon("alert"), h("div.grow", rich(message)));
    error.hidden = false;
    key.setAttribute("aria-invalid", "true");
    key.focus();
  }
  return h(
    "div.signin",
    h(
      "section.signin-art",
      h("a.brand", { href: "#/" }, brandMark(true), "packshot", h("span.brand-tag", "studio")),
      h(
        "div",
        h("h2", "Product photography from the photos you already have."),
        h(
          "p",
          "Upload a handful of photos of a product, teach the studio what it looks like, then describe the shots you need: on white, in a kitchen, on a model.",
        ),
        h("div.flow", h("span", "1 · Upload photos"), h("span", "2 · Train"), h("span", "3 · Shoot")),
      ),
      h("p.small", { style: { color: "#8b8c90" } }, "Runs on your own hardware: your photos and models stay with you."),
    ),
    h("section.signin-form", form),
  );
}

// ---------- products ----------

function productStatus(product, training) {
  if (training && training.status === "running") {
    const p = training.progress || {};
    const pct = p.total ? Math.round((100 * (p.done || 0)) / p.total) : 0;
    return h("span.badge.info", `Training ${pct}%`);
  }
  if (training && training.status === "queued") return h("span.badge.info", "Queued");
  if (training && training.status === "succeeded") return h("span.badge.ok", "Ready to shoot");
  if (training && training.status === "failed") return h("span.badge.bad", "Training failed");
  if (!product.photo_count) return h("span.badge", "Needs photos");
  return h("span.badge.warn", "Ready to train");
}

/** Fill a product card's cover (its first photo) and its status (its newest training). */
async function enrichCard(card, product) {
  const base = `/v1/products/${encodeURIComponent(product.id)}`;
  const first = (body) => (Array.isArray(body) ? body : body?.data || [])[0];
  const [training, photo] = await Promise.all([
    api.get(`${base}/trainings`).then(first, () => null),
    product.photo_count ? api.get(`${base}/photos`).then(first, () => null) : null,
  ]);
  card.querySelector(".badge")?.replaceWith(productStatus(product, training));
  if (photo) mount(card.querySelector(".cover"), h("img", { src: photo.url, alt: "", decoding: "async" }));
}

async function productsPage(main) {
  const list = h("div.products", { "aria-busy": "true" });
  for (let i = 0; i < 3; i++) list.append(h("div.skeleton", { style: { height: "250px" } }));
  const newButton = h(
    "button.btn.primary",
    { type: "button", onclick: () => createProductDialog() },
    icon("plus"),
    "New product",
  );
  mount(
    main,
    h(
      "div.page-head",
      h("div", h("h1", "Products"), h("p.sub", "Each product gets its own model, trained on its photos.")),
      newButton,
    ),
    list,
  );
  let products;
  try {
    const body = await api.get("/v1/products");
    products = body.data;
  } catch (exc) {
    mount(list, h("div.notice.bad", { style: { gridColumn: "1 / -1" } }, icon("alert"), h("div.grow", rich(exc.message))));
    list.removeAttribute("aria-busy");
    return;
  }
  list.removeAttribute("aria-busy");
  if (!products.length) {
    newButton.hidden = true;
    list.replaceWith(
      h(
        "div.card.empty",
        { "data-testid": "products-empty" },
        h("div.art", icon("box")),
        h("h2", "Add your first product"),
        h(
          "p",
          "Give it a name and say what it is. Then upload 10 to 40 photos, train a model in a few minutes, and start shooting.",
        ),
        h(
          "button.btn.primary",
          { type: "button", onclick: () => createProductDialog() },
          icon("plus"),
          "New product",
        ),
        h(
          "ol",
          h("li", h("b", "1"), "Upload photos"),
          h("li", h("b", "2"), "Train the model"),
          h("li", h("b", "3"), "Describe your shots"),
        ),
      ),
    );
    return;
  }
  const cards = products.map(productCard);
  mount(list, cards);
  // Covers and statuses a few at a time, so a long list doesn't flood the server.
  const queue = products.map((p, i) => [cards[i], p]);
  const next = () => queue.length && enrichCard(...queue.shift()).catch(() => {}).then(next);
  for (let i = 0; i < 4; i++) next();
}

function productCard(product) {
  const photos = product.photo_count ?? 0;
  return h(
    "a.card.product-card",
    { href: `#/products/${encodeURIComponent(product.id)}`, "data-testid": "product-card" },
    h("div.cover", icon("camera")),
    h(
      "div.body",
      h("div.name", product.name),
      h("div.meta", h("span", `${product.class_name} · ${plural(photos, "photo")}`)),
      h("div.meta", productStatus(product, null), product.created_at ? h("span", timeAgo(product.created_at)) : null),
    ),
  );
}

function createProductDialog() {
  const name = h("input.input", {
    id: "product-name",
    name: "name",
    required: true,
    maxlength: 200,
    placeholder: "Aurora wireless headphones",
    autocomplete: "off",
  });
  const className = h("input.input", {
    id: "product-class",
    name: "class_name",
    required: true,
    maxlength: 100,
    placeholder: "headphones",
    autocomplete: "off",
  });
  const error = h("div.notice.bad", { role: "alert", hidden: true });
  const submit = h("button.btn.primary", { type: "submit" }, "Create product");
  const dialog = h(
    "dialog",
    { "aria-labelledby": "new-product-title" },
    h(
      "form",
      {
        method: "dialog",
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          error.hidden = true;
          const body = { name: name.value.trim(), class_name: className.value.trim() };
          if (!body.name || !body.class_name) {
            mount(error, icon("alert"), h("div.grow", "Give the product a name and say what kind of thing it is."));
            error.hidden = false;
            (body.name ? className : name).focus();
            return;
          }
          try {
            const product = await busy(submit, () => api.post("/v1/products", body));
            dialog.close();
            toast(`${product.name} created. Now add its photos.`);
            location.hash = `#/products/${encodeURIComponent(product.id)}`;
          } catch (exc) {
            mount(error, icon("alert"), h("div.grow", rich(exc.message)));
            error.hidden = false;
          }
        },
      },
      h("h2", { id: "new-product-title" }, "New product"),
      h("p.lead", "One product per model: a single item, photographed from several sides."),
      h(
        "div.stack",
        field(name, "Name"),
        field(className, "What is it?", "One or two plain words: headphones, backpack, teapot, sneaker."),
        error,
        h(
          "div.row.end",
          h("button.btn.ghost", { type: "button", onclick: () => dialog.close() }, "Cancel"),
          submit,
        ),
      ),
    ),
  );
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  name.focus();
}

boot();
