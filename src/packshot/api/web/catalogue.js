// The catalogue page (#/catalogue): every product with its state (photos judged, model, shots,
// marketplace compliance), the shot list every product gets, and one button that shoots the
// whole catalogue (POST /v1/catalogue-shoots), followed product by product until it is done.

import * as api from "./api.js";
import { busy, field, h, icon, markInvalid, mount, plural, rich } from "./dom.js";
import { badgeList, complianceBadges, deliveryDownloads, loadMarketplaces, pickedProfiles, profilesField } from "./market.js";
import { loadModels, modelOptions } from "./models.js";

const SLOTS = [
  ["main", "Main image"],
  ["additional", "Additional image"],
  ["lifestyle", "Lifestyle image"],
];
const ASPECTS = ["1:1", "4:5", "3:4", "16:9", "9:16"];
const DEFAULT_SHOTS = [
  { slot: "main", preset: "studio", description: "", aspect: "1:1", count: 1 },
  { slot: "additional", preset: "", description: "the {product} seen from the side on a light grey table", aspect: "4:5", count: 1 },
  { slot: "lifestyle", preset: "lifestyle", description: "the {product} on a wooden bench in a sunny park", aspect: "16:9", count: 1 },
];
const VERDICTS = { ready: ["ok", "Ready"], usable: ["warn", "Usable"], "not enough": ["bad", "Not enough"] };
// How a product of a catalogue shoot was drawn (its outcome's `route`).
const ROUTES = { trained: "Trained in the catalogue", instant: "Instant, from its photos", model: "Its own model" };
const POLL_MS = 1000;

/** Render the page into `main`; returns its clean-up (stops following a running shoot). */
export function cataloguePage(main) {
  document.title = "Catalogue · packshot studio";
  const page = new CataloguePage(main);
  page.load();
  return () => page.leave();
}

class CataloguePage {
  constructor(main) {
    this.main = main;
    this.timer = null;
    this.left = false;
    this.presets = [];
    this.marketplaces = [];
  }

  leave() {
    this.left = true;
    clearTimeout(this.timer);
  }

  async load() {
    this.table = h("div.card.catalogue-table", { "aria-busy": "true" }, h("div.skeleton", { style: { height: "160px" } }));
    this.jobBox = h("div.catalogue-job-box");
    mount(
      this.main,
      h(
        "div.page-head",
        h("div", h("h1", "Catalogue"), h("p.sub", "Every product, one shot list: the products without a model are trained first, or shot instantly from their photos.")),
      ),
      this.table,
      this.jobBox,
    );
    let products, shoots;
    try {
      [products, shoots, this.presets, this.marketplaces, this.models] = await Promise.all([
        api.get("/v1/products").then((b) => b.data),
        api.get("/v1/catalogue-shoots").then((b) => b.data),
        api.get("/v1/presets"),
        loadMarketplaces(),
        loadModels(),
      ]);
    } catch (exc) {
      mount(this.table, h("div.notice.bad", icon("alert"), h("div.grow", rich(exc.message))));
      return;
    }
    this.products = products;
    this.latest = shoots[0] || null;
    this.states = new Map();
    await Promise.all(products.map((p) => this.productState(p)));
    this.drawTable();
    this.main.append(this.form());
    if (this.latest) this.follow(this.latest);
  }

  /** A product's photos verdict (intake's report) and its newest training. */
  async productState(product) {
    const base = `/v1/products/${encodeURIComponent(product.id)}`;
    const [trainings, report] = await Promise.all([
      api.get(`${base}/trainings`).then((b) => b.data, () => []),
      product.photo_count ? api.get(`${base}/report`).catch(() => null) : null,
    ]);
    this.states.set(product.id, { training: trainings[0] || null, report });
  }

  drawTable() {
    const shoot = this.latest;
    const inShoot = new Map((shoot?.products || []).map((p) => [p.product_id, p]));
    const rows = this.products.map((product) => {
      const { training, report } = this.states.get(product.id) || {};
      const state = inShoot.get(product.id);
      const verdict = report && VERDICTS[report.verdict];
      const photos = h(
        "div.cell-stack",
        h("span", plural(product.photo_count || 0, "photo")),
        verdict ? h(`span.badge.${verdict[0]}`, { "data-testid": "verdict" }, verdict[1]) : product.photo_count ? null : h("span.badge", "Needs photos"),
      );
      let model = h("span.badge", "Not trained");
      if (state?.route === "trained" || state?.route === "instant") model = h("span.badge.ok", { "data-testid": "route" }, ROUTES[state.route]);
      else if (training?.status === "succeeded") model = h("span.badge.ok", "Trained");
      else if (training && ["queued", "running"].includes(training.status)) model = h("span.badge.info", "Training");
      else if (training?.status === "failed") model = h("span.badge.bad", "Training failed");
      return h(
        "tr",
        { "data-testid": "catalogue-row", "data-product": product.id },
        h("th", { scope: "row" }, h("a", { href: `#/products/${encodeURIComponent(product.id)}` }, product.name)),
        h("td", photos),
        h("td", model),
        h("td", { "data-testid": "catalogue-shots" }, shotsCell(state)),
        h("td", { "data-testid": "compliance" }, complianceCell(state, this.marketplaces)),
      );
    });
    mount(
      this.table,
      h(
        "div.table-scroll",
        h(
          "table.catalogue",
          h("thead", h("tr", ["Product", "Photos", "Model", "Shots", "Compliance"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", rows),
        ),
      ),
    );
    this.table.removeAttribute("aria-busy");
  }

  form() {
    const list = h("div.shot-rows", { "data-testid": "shot-list" });
    const addRow = (shot) => list.append(this.shotRow(shot, list));
    DEFAULT_SHOTS.forEach(addRow);
    const profiles = profilesField(this.marketplaces, { drawn: true }); // every shot is drawn
    // The base model of the products without one (CatalogueParams.base_model): of their
    // trainings, or, with instant shots, a model that takes reference images.
    const { training_default: trainingModel, instant_default: instantModel } = this.models;
    const model = h("input.input", { id: "catalogue-model", name: "model", value: trainingModel, list: "catalogue-models", autocomplete: "off", spellcheck: "false" });
    const models = modelOptions("catalogue-models", this.models, "train");
    // Instant shots: no training; the base model follows the choice while it holds a default.
    const instant = h("input", {
      id: "catalogue-instant",
      name: "instant",
      type: "checkbox",
      onchange: () => {
        if ([trainingModel, instantModel, ""].includes(model.value.trim())) model.value = instant.checked ? instantModel : trainingModel;
        models.replaceChildren(...modelOptions("catalogue-models", this.models, instant.checked ? "instant" : "train").children);
        trainSteps.disabled = instant.checked;
        hint.textContent = routeHint();
      },
    });
    const routeHint = () => `${plural(this.products.length, "product")}: each without a model is ${instant.checked ? "shot instantly from its photos" : "trained first"}.`;
    const hint = h("span.hint", routeHint());
    const trainSteps = h("input.input", { id: "catalogue-train-steps", name: "max_train_steps", type: "number", min: 1, max: 20000, placeholder: "the preset's" });
    const steps = h("input.input", { id: "catalogue-steps", name: "num_inference_steps", type: "number", min: 1, max: 150, placeholder: "25" });
    const error = h("div.notice.bad", { role: "alert", hidden: true });
    const submit = h("button.btn.accent", { type: "submit", "data-testid": "start-catalogue" }, icon("camera"), "Shoot the catalogue");
    const fail = (message) => {
      mount(error, icon("alert"), h("div.grow", rich(message)));
      error.hidden = false;
    };
    const form = h(
      "form.card.section.stack",
      {
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          error.hidden = true;
          const shots = [...list.querySelectorAll(".shot-row")].map(readRow);
          if (!shots.length) return fail("Add at least one shot to the list.");
          const ids = this.products.map((p) => p.id);
          if (!ids.length) return fail("Add a product first.");
          const body = { product_ids: ids, shots, instant: instant.checked };
          if (model.value.trim()) body.model = model.value.trim();
          const picked = pickedProfiles(profiles);
          if (picked.length) body.profiles = picked;
          if (trainSteps.value && !instant.checked) body.max_train_steps = Number(trainSteps.value);
          if (steps.value) body.num_inference_steps = Number(steps.value);
          let shoot;
          try {
            shoot = await busy(submit, () => api.post("/v1/catalogue-shoots", body));
          } catch (exc) {
            fail(exc.message);
            return markInvalid(form, exc.message);
          }
          this.latest = shoot;
          this.follow(shoot);
        },
      },
      h("h2", "Shot list"),
      h("p.sub", "The shots every product gets, main image first. Use {product} for the product in your words."),
      list,
      h("div.row", h("button.btn.ghost.small", { type: "button", "data-testid": "add-shot", onclick: () => addRow({ slot: "additional", preset: "", description: "", aspect: "1:1", count: 1 }) }, icon("plus"), "Add a shot")),
      profiles,
      h(
        "div.field",
        h("span.label", "Products without a model"),
        h("label.check", { for: "catalogue-instant" }, instant, "Instant shots, no training"),
        h("span.hint", "Their best photos guide a model that takes reference images (FLUX.2 [klein]) as it draws."),
      ),
      h(
        "details.advanced",
        h("summary", "Options"),
        h(
          "div.grid-2",
          field(model, "Base model", "For the products without a model: a Hugging Face Hub id; the suggestions say what each needs."),
          models,
          field(trainSteps, "Training steps"),
          field(steps, "Sampling steps", "More is slower and finer."),
        ),
      ),
      error,
      h("div.row", submit, hint),
    );
    return form;
  }

  shotRow(shot, list) {
    const n = list.children.length + 1;
    const id = (name) => `shot-${n}-${name}-${Math.random().toString(36).slice(2, 7)}`;
    const select = (name, options, value, label) => {
      const el = h("select.input", { id: id(name), name, "aria-label": `${label}, shot ${n}` }, options.map(([v, t]) => h("option", { value: v, selected: v === value }, t)));
      return el;
    };
    const slot = select("slot", SLOTS, shot.slot, "Slot");
    const preset = select("preset", [["", "No preset"], ...this.presets.map((p) => [p.name, p.label])], shot.preset, "Preset");
    const aspect = select("aspect", ASPECTS.map((a) => [a, a]), shot.aspect, "Aspect");
    const description = h("input.input", { id: id("description"), name: "description", value: shot.description, placeholder: "the {product} on a marble table", "aria-label": `Description, shot ${n}`, maxlength: 500 });
    const count = h("input.input.count", { id: id("count"), name: "count", type: "number", min: 1, max: 16, value: shot.count, "aria-label": `Images, shot ${n}` });
    const row = h(
      "div.shot-row",
      { "data-testid": "shot-row" },
      slot,
      preset,
      description,
      aspect,
      count,
      h("button.btn.ghost.small", { type: "button", "aria-label": `Remove shot ${n}`, onclick: () => row.remove() }, icon("x")),
    );
    return row;
  }

  /** Show a catalogue shoot and poll it until it ends, then redraw the table. */
  follow(shoot) {
    clearTimeout(this.timer);
    mount(this.jobBox, jobCard(shoot, this.marketplaces));
    if (["queued", "running"].includes(shoot.status)) {
      this.timer = setTimeout(async () => {
        if (this.left) return;
        try {
          this.latest = await api.get(`/v1/catalogue-shoots/${encodeURIComponent(shoot.id)}`);
        } catch {
          this.latest = shoot;
        }
        this.follow(this.latest);
      }, POLL_MS);
    } else {
      this.drawTable();
    }
  }
}

function readRow(row) {
  const value = (name) => row.querySelector(`[name=${name}]`).value.trim();
  const shot = { slot: value("slot"), aspect: value("aspect"), count: Number(value("count")) || 1 };
  if (value("preset")) shot.preset = value("preset");
  if (value("description")) shot.description = value("description");
  return shot;
}

function shotsCell(state) {
  if (!state) return h("span.muted", "—");
  if (state.status === "done") return h("span.badge.ok", plural(state.images, "image"));
  if (state.status === "failed") return h("span.badge.bad", { title: state.error || "" }, "Failed");
  if (state.status === "running") return h("span.badge.info", "Shooting");
  return h("span.badge", "Queued");
}

function complianceCell(state, marketplaces) {
  const badges = complianceBadges(state?.compliance, marketplaces);
  return badges ? h("div.cell-stack", badges) : h("span.muted", "—");
}

function jobCard(shoot, marketplaces) {
  const running = ["queued", "running"].includes(shoot.status);
  const products = shoot.products.map((p) =>
    h(
      "li.catalogue-product",
      { "data-testid": "catalogue-product", "data-status": p.status, "data-handle": p.handle },
      h("strong", p.name),
      h(`span.badge.${{ done: "ok", failed: "bad", running: "info" }[p.status] || "plain"}`, { "data-testid": "product-state" }, p.status === "done" ? `Done · ${plural(p.images, "image")}` : p.status[0].toUpperCase() + p.status.slice(1)),
      p.route ? h("span.badge", { "data-testid": "product-route", "data-route": p.route }, ROUTES[p.route]) : null,
      p.error ? h("div.why", rich(p.error)) : null,
      h(
        "div.catalogue-shots",
        shoot.shots
          .filter((s) => s.product === p.handle)
          .map((s) =>
            h(
              "figure.catalogue-shot",
              { "data-testid": "catalogue-shot", "data-slot": s.slot },
              h("img", { src: s.url, alt: `${p.name}, ${s.slot} image`, loading: "lazy" }),
              h("figcaption", s.slot, badgeList(s.badges)),
            ),
          ),
      ),
    ),
  );
  const cost = shoot.cost || {};
  return h(
    "section.card.section.catalogue-job",
    { "data-testid": "catalogue-job", "data-status": shoot.status, "data-catalogue": shoot.id },
    h("h2", running ? "Shooting the catalogue…" : shoot.status === "succeeded" ? "Catalogue shot" : `Catalogue shoot ${shoot.status}`),
    shoot.error ? h("div.notice.bad", { role: "alert" }, icon("alert"), h("div.grow", rich(shoot.error.message))) : null,
    h("ol.catalogue-products", products),
    cost.images
      ? h("p.sub", { "data-testid": "catalogue-cost" }, `${plural(cost.images, "image")} at £${cost.cost_per_image.toFixed(4)} each on the GPU${cost.training_device_seconds ? ", training included," : ""} against £${Number(cost.studio_price_per_photo).toFixed(2)} a studio photo.`)
      : null,
    shoot.status === "succeeded"
      ? h("div.row", h("a.btn.ghost", { href: shoot.download_url, download: "", "data-testid": "catalogue-download" }, icon("download"), "Download all"))
      : null,
    shoot.delivery ? deliveryDownloads(shoot.delivery, marketplaces) : null,
  );
}
