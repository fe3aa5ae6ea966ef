// The product page: 1. photos (drag-and-drop upload, per-file results, the photo-set report),
// 2. training (preset, live progress over server-sent events, samples, LoRA files),
// 3. shooting (descriptions x shot presets, a gallery that fills in with scores and flags).

import * as api from "./api.js";
import { busy, duration, field, h, markInvalid, rich, icon, mount, plural, spinner, timeAgo, toast } from "./dom.js";

const ACCEPT = "image/jpeg,image/png,image/webp,image/gif,image/heic,image/heif,image/avif";
const PRESET_STEPS = { quick: 300, standard: 500, best: 1000 }; // presets/training.json
// The model files a merchant may want, with what each is for.
const DOWNLOADS = {
  "pytorch_lora_weights.safetensors": ["LoRA for diffusers", "pipe.load_lora_weights()"],
  "pytorch_lora_weights_kohya.safetensors": ["LoRA for AUTOMATIC1111 and ComfyUI", "kohya format"],
  "README.md": ["Model card", "how it was trained and how to use it"],
  "packshot.json": ["Training record", "settings, photos and timings"],
};
// What a training does before its first step, by progress stage.
const STAGES = {
  intake: "Checking photos",
  prepare: "Cropping photos",
  cache: "Encoding photos",
  "class-images": "Rendering class images",
};
const ACTIVE = new Set(["queued", "running"]);
const TRAINING_PRESETS = [
  ["quick", "Quick", "300 steps · a first look"],
  ["standard", "Standard", "500 steps · recommended"],
  ["best", "Best", "1000 steps · finest detail"],
];

/** Render the product page into `main`; returns the clean-up function (closes streams). */
export function productPage(main, productId) {
  const stops = new Set();
  const page = new ProductPage(main, productId, stops);
  page.load();
  return () => {
    for (const stop of stops) stop();
    stops.clear();
    page.gone = true;
  };
}

const enc = encodeURIComponent;

class ProductPage {
  constructor(main, id, stops) {
    this.main = main;
    this.id = id;
    this.stops = stops;
    this.gone = false;
    this.product = null;
    this.photos = [];
    this.report = null;
    this.training = null; // the newest training
    this.hasModel = false; // some training of this product succeeded: it can be shot
    this.shoots = [];
    this.presets = []; // the shot presets
  }

  base() {
    return `/v1/products/${enc(this.id)}`;
  }

  async load() {
    mount(this.main, h("div.loading", spinner(), "Loading product…"));
    try {
      const [product, photos, presets] = await Promise.all([
        api.get(this.base()),
        api.get(`${this.base()}/photos`),
        api.get("/v1/presets").catch(() => null),
      ]);
      this.product = product;
      this.photos = listOf(photos);
      this.presets = listOf(presets);
      presetLabels = Object.fromEntries(this.presets.map((p) => [p.name, p.label]));
      const [report, trainings, shoots] = await Promise.all([
        this.photos.length ? api.get(`${this.base()}/report`).catch(() => null) : null,
        api.get(`${this.base()}/trainings`).catch(() => null),
        api.get(`${this.base()}/shoots`).catch(() => null),
      ]);
      this.report = report;
      const all = listOf(trainings);
      this.training = all[0] || null;
      this.hasModel = all.some((t) => t.status === "succeeded");
      this.shoots = listOf(shoots);
    } catch (exc) {
      if (this.gone) return;
      mount(
        this.main,
        h(
          "div.card.empty",
          h("div.art", icon("alert")),
          h("h2", exc.status === 404 ? "Product not found" : "Couldn't load this product"),
          h("p", rich(exc.message)),
          h("a.btn", { href: "#/" }, "Back to products"),
        ),
      );
      return;
    }
    if (this.gone) return;
    document.title = `${this.product.name} · packshot studio`;
    this.render();
  }

  render() {
    const p = this.product;
    this.photoSection = h("section.card.section", { id: "photos", "aria-labelledby": "photos-title" });
    this.trainSection = h("section.card.section", { id: "training", "aria-labelledby": "training-title" });
    this.shootSection = h("section.card.section", { id: "shoot", "aria-labelledby": "shoot-title" });
    mount(
      this.main,
      h("nav.crumbs", { "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "Products"), " / ", p.name),
      h(
        "div.page-head",
        h(
          "div",
          h("h1", { "data-testid": "product-title" }, p.name),
          h("p.sub", `${p.class_name}${p.created_at ? " · added " + timeAgo(p.created_at) : ""}`),
        ),
        h(
          "button.btn.ghost.small.danger",
          { type: "button", onclick: (e) => this.remove(e.currentTarget) },
          icon("trash"),
          "Delete",
        ),
      ),
      this.photoSection,
      this.trainSection,
      this.shootSection,
    );
    this.renderPhotos();
    this.renderTraining();
    this.renderShoot();
  }

  async remove(button) {
    if (!confirm(`Delete ${this.product.name} with its photos, models and shots? This can't be undone.`)) {
      return;
    }
    try {
      await busy(button, () => api.del(this.base()));
      toast(`${this.product.name} deleted.`);
      location.hash = "#/";
    } catch (exc) {
      toast(exc.message, "bad");
    }
  }

  // ---------------------------------------------------------------- 1. photos

  renderPhotos(results = null, reportPending = false) {
    const count = this.photos.length;
    const input = h("input", { type: "file", multiple: true, accept: ACCEPT, hidden: true, id: "photo-input" });
    const zone = h(
      "div.dropzone",
      {
        role: "button",
        tabindex: "0",
        "data-testid": "dropzone",
        "aria-describedby": "drop-hint",
        onclick: () => input.click(),
        onkeydown: (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), input.click()),
        ondragover: (e) => {
          e.preventDefault();
          zone.classList.add("over");
        },
        ondragleave: () => zone.classList.remove("over"),
        ondrop: (e) => {
          e.preventDefault();
          zone.classList.remove("over");
          const files = [...(e.dataTransfer?.files || [])];
          if (files.length) this.upload(files);
        },
      },
      icon("upload"),
      h("strong", count ? "Add more photos" : "Drop photos here, or click to choose"),
      h(
        "p",
        { id: "drop-hint" },
        "JPEG, PNG, WebP or HEIC. 10–40 photos from different angles and backgrounds work best.",
      ),
    );
    input.addEventListener("change", () => {
      const files = [...input.files];
      input.value = "";
      if (files.length) this.upload(files);
    });
    this.uploadStatus = h("div", { "aria-live": "polite" });
    mount(
      this.photoSection,
      sectionHead(
        1,
        "photos-title",
        "Photos",
        "Each file is checked as it arrives: sharpness, exposure, duplicates.",
        count ? "done" : "current",
        count ? h("span.badge.plain", { "data-testid": "photo-count" }, plural(count, "photo")) : null,
      ),
      h(
        "div.stack",
        zone,
        input,
        this.uploadStatus,
        results ? resultList(results) : null,
        reportPending
          ? h("div.report.row", { "aria-busy": "true" }, spinner(), h("span.muted", "Updating the photo-set report…"))
          : this.report
            ? reportCard(this.report)
            : null,
        count ? photoStrip(this.photos) : null,
      ),
    );
  }

  async upload(files) {
    const bar = h("div.progress", h("div"));
    const label = h("span", `Uploading ${plural(files.length, "file")}…`);
    mount(
      this.uploadStatus,
      h("div.job", bar, h("div.progress-meta", label, h("span", formatBytes(files.reduce((s, f) => s + f.size, 0))))),
    );
    let body;
    try {
      body = await api.upload(`${this.base()}/photos`, files, (sent, total) => {
        bar.firstChild.style.width = `${Math.round((100 * sent) / total)}%`;
        if (sent >= total) {
          label.textContent = "Checking photos…";
          bar.classList.add("indeterminate");
        }
      });
    } catch (exc) {
      mount(
        this.uploadStatus,
        h("div.notice.bad", { role: "alert" }, icon("alert"), h("div.grow", h("strong", "Upload failed"), rich(exc.message))),
      );
      return;
    }
    if (this.gone) return;
    const results = body.results || [];
    const previews = new Map(files.map((f) => [f.name, f]));
    for (const r of results) r.preview = previews.get(r.file_name);
    const accepted = results.filter(isAccepted).length;
    toast(`${plural(accepted, "photo")} added${results.length > accepted ? `, ${results.length - accepted} rejected` : ""}.`);
    // The per-file results at once; the set's report (intake over every photo) follows.
    this.renderPhotos(results, true);
    const [photos, report] = await Promise.all([
      api.get(`${this.base()}/photos`).catch(() => null),
      api.get(`${this.base()}/report`).catch(() => null),
    ]);
    if (this.gone) return;
    if (photos) this.photos = listOf(photos);
    if (report) this.report = report;
    this.renderPhotos(results);
    this.renderTraining();
  }

  // ---------------------------------------------------------------- 2. training

  renderTraining() {
    const t = this.training;
    const ready = this.photos.length > 0;
    const done = t && t.status === "succeeded";
    const head = sectionHead(
      2,
      "training-title",
      "Train the model",
      "The studio learns what your product looks like. You can leave this page; training continues.",
      done ? "done" : ready ? "current" : "",
      t ? (this.trainBadge = statusBadge(t.status)) : null,
    );
    this.trainSection.classList.toggle("locked", !ready && !t);
    if (!ready && !t) {
      mount(this.trainSection, head, h("p.muted", "Add photos first: training needs at least a few accepted photos."));
      return;
    }
    const body = h("div.stack");
    mount(this.trainSection, head, body);
    if (t && ACTIVE.has(t.status)) {
      body.append(this.trainingProgress(t));
    } else if (t) {
      body.append(this.trainingDone(t));
    }
    if (!t || !ACTIVE.has(t.status)) {
      const form = this.trainingForm(Boolean(t));
      body.append(
        t && t.status === "succeeded"
          ? h("details.advanced.again", h("summary", "Train a new model with other settings"), form)
          : form,
      );
    }
  }

  trainingForm(again) {
    const verdict = this.report?.verdict;
    const seg = h(
      "div.seg",
      { role: "radiogroup", "aria-label": "Training preset" },
      TRAINING_PRESETS.map(([value, label, hint]) =>
        h(
          "label",
          h("input", { type: "radio", name: "preset", value, checked: value === "standard" }),
          h("strong", label),
          h("small", hint),
        ),
      ),
    );
    const steps = h("input.input", { id: "train-steps", name: "steps", type: "number", min: 1, max: 20000, placeholder: "from the preset", inputmode: "numeric" });
    const model = h("input.input", { id: "train-model", name: "model", placeholder: "stabilityai/stable-diffusion-xl-base-1.0", spellcheck: "false", autocomplete: "off" });
    const error = h("div.notice.bad", { role: "alert", hidden: true });
    const start = h("button.btn.accent", { type: "submit", "data-testid": "start-training" }, icon("spark"), again ? "Train again" : "Start training");
    const warn =
      verdict === "not enough"
        ? h(
            "div.notice.warn",
            icon("alert"),
            h("div.grow", h("strong", "This photo set is thin"), "The report above says what to add. You can still train; results will be weaker."),
          )
        : null;
    const form = h(
      "form.stack",
      {
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          error.hidden = true;
          const body = { preset: form.querySelector("input[name=preset]:checked").value };
          if (model.value.trim()) body.model = model.value.trim();
          if (steps.value) {
            const n = Number(steps.value);
            if (!Number.isInteger(n) || n < 1) {
              mount(error, icon("alert"), h("div.grow", "Steps must be a whole number above 0, or empty to use the preset's."));
              error.hidden = false;
              steps.focus();
              return;
            }
            body.steps = n;
          }
          // Samples along the way (at a third and two thirds), not only at the end.
          const planned = body.steps || PRESET_STEPS[body.preset];
          if (planned >= 3) body.sample_every = Math.ceil(planned / 3);
          if (verdict === "not enough") body.force = true;
          try {
            this.training = await busy(start, () => api.post(`${this.base()}/trainings`, body));
          } catch (exc) {
            mount(error, icon("alert"), h("div.grow", h("strong", "Training didn't start"), rich(exc.message)));
            error.hidden = false;
            markInvalid(form, exc.message);
            return;
          }
          this.renderTraining();
        },
      },
      warn,
      seg,
      h(
        "details.advanced",
        h("summary", "Advanced"),
        h(
          "div.grid-2",
          field(steps, "Steps", "Overrides the preset's step count."),
          field(model, "Base model", "A Hugging Face Hub id. Empty: Stable Diffusion XL."),
        ),
      ),
      error,
      h("div.row", start),
    );
    return form;
  }

  trainingProgress(t) {
    const bar = h("div.progress", { role: "progressbar", "aria-label": "Training progress", "aria-valuemin": 0, "aria-valuemax": 100 }, h("div"));
    const left = h("span", { "data-testid": "training-step" }, t.status === "queued" ? "Waiting for the GPU…" : "Starting…");
    const right = h("span");
    const samples = h("div.samples", { "data-testid": "samples" });
    const samplesWrap = h("div.stack", { hidden: true }, h("h3", "Samples so far"), samples);
    const cancel = cancelButton(`/v1/trainings/${enc(t.id)}/cancel`, "Canceling the training…");
    const box = h(
      "div.job",
      { "data-testid": "training-progress" },
      h("div.job-head", h("strong", "Training"), cancel),
      bar,
      h("div.progress-meta", left, right),
      samplesWrap,
    );
    if (t.status === "queued") bar.classList.add("indeterminate");
    const seen = new Set();
    const setRunning = () => {
      bar.classList.remove("indeterminate");
      this.trainBadge?.replaceWith((this.trainBadge = statusBadge("running")));
    };
    const last = { done: 0, total: 0 };
    const show = (done, total, extra) => {
      Object.assign(last, { done, total });
      bar.classList.remove("indeterminate");
      const pct = total ? Math.min(100, (100 * done) / total) : 0;
      bar.firstChild.style.width = `${pct}%`;
      bar.setAttribute("aria-valuenow", String(Math.round(pct)));
      mount(left, h("b", `${Math.round(pct)}%`), ` · step ${done} of ${total}`);
      right.textContent = extra || "";
    };
    const addSamples = (urls, step) => {
      for (const url of urls) {
        if (seen.has(url)) continue;
        seen.add(url);
        samples.append(h("figure", h("img", { src: url, alt: `Sample at step ${step}` }), h("figcaption", `step ${step}`)));
      }
      samplesWrap.hidden = seen.size === 0;
    };
    const initial = progressOf(t);
    if (initial.total) show(initial.done, initial.total);
    for (const s of t.samples || []) addSamples([s.url], sampleStep(s.name));
    const finish = async () => {
      try {
        this.training = await api.get(`/v1/trainings/${enc(t.id)}`);
      } catch (exc) {
        toast(exc.message, "bad");
        return;
      }
      if (this.gone) return;
      if (this.training.status === "succeeded") {
        this.hasModel = true;
        toast("Your model is ready. Describe your first shots below.");
      }
      this.renderTraining();
      this.renderShoot();
    };
    const stop = api.follow(
      `/v1/trainings/${enc(t.id)}/events`,
      {
        // Before the first step: intake, crops, cached latents (and class images).
        progress: (ev) => {
          setRunning();
          const label = STAGES[ev?.stage] || "Preparing";
          left.textContent = ev?.total ? `${label} · ${ev.done} of ${ev.total}` : `${label}…`;
        },
        start: () => {
          setRunning();
          left.textContent = "Training…";
        },
        resume: (ev) => {
          right.textContent = `Resumed from step ${ev?.step ?? "?"} after a restart.`;
        },
        step: (ev) => {
          setRunning();
          const p = eventProgress(ev);
          const extra = [
            ev?.loss != null ? `loss ${Number(ev.loss).toFixed(3)}` : "",
            ev?.eta_s ? `about ${duration(ev.eta_s)} left` : "",
          ];
          show(p.done, p.total, extra.filter(Boolean).join(" · "));
        },
        sample: (ev) => addSamples(ev?.urls || [], ev?.step ?? ""),
        done: (ev) => {
          const p = eventProgress(ev);
          show(p.done || last.total, p.total || last.total, "Saving the model…");
          bar.classList.add("done");
        },
        // `end` comes once the job's status is final (succeeded, failed or canceled).
        end: () => {
          stopAll();
          finish();
        },
      },
      () => {
        right.textContent = "Live updates lost. Reload the page to reconnect.";
      },
    );
    const stopAll = () => {
      stop();
      this.stops.delete(stopAll);
    };
    this.stops.add(stopAll);
    return box;
  }

  trainingDone(t) {
    if (t.status === "failed") {
      return h(
        "div.notice.bad",
        { role: "alert", "data-testid": "training-failed" },
        icon("alert"),
        h("div.grow", h("strong", "Training failed"), rich(errorText(t.error)) || "No reason was given. Try again; if it fails again, the server log has details."),
      );
    }
    if (t.status === "canceled") {
      return h("div.notice", icon("x"), h("div.grow", h("strong", "Training canceled"), "Start it again whenever you're ready."));
    }
    const files = t.files || [];
    const downloads = files.filter((f) => DOWNLOADS[f.name]);
    const samples = (t.samples || []).slice(-8);
    return h(
      "div.stack",
      { "data-testid": "training-done" },
      h(
        "div.notice.ok",
        icon("check"),
        h(
          "div.grow",
          h("strong", "Model ready"),
          `Trained ${t.final_step ?? t.progress?.total ?? ""} steps${t.finished_at ? ", finished " + timeAgo(t.finished_at) : ""}. Describe your shots below.`,
        ),
      ),
      samples.length
        ? h(
            "div.stack",
            h("h3", "Samples"),
            h(
              "div.samples",
              samples.map((s) =>
                h("figure", h("img", { src: s.url, alt: `Training sample at step ${sampleStep(s.name)}`, loading: "lazy" }), h("figcaption", `step ${sampleStep(s.name)}`)),
              ),
            ),
          )
        : null,
      downloads.length
        ? h(
            "div.stack",
            h("h3", "Download the model"),
            h(
              "ul.downloads",
              downloads.map((f) =>
                h(
                  "li",
                  h(
                    "div.what",
                    h("div.file", DOWNLOADS[f.name][0]),
                    h("div.why", h("span.mono", f.name), ` · ${formatBytes(f.size)}`),
                  ),
                  h(
                    "a.btn.small",
                    { href: f.url, download: f.name, "data-testid": "lora-file", dataset: { file: f.name }, "aria-label": `Download ${f.name}` },
                    icon("download"),
                    h("span.label", "Download"),
                  ),
                ),
              ),
            ),
          )
        : null,
    );
  }

  // ---------------------------------------------------------------- 3. shoot

  renderShoot() {
    const ready = this.hasModel;
    const head = sectionHead(
      3,
      "shoot-title",
      "Shoot",
      "Describe the pictures you need. Every shot is checked for your product.",
      this.shoots.some((s) => s.status === "succeeded") ? "done" : ready ? "current" : "",
    );
    this.shootSection.classList.toggle("locked", !ready && !this.shoots.length);
    if (!ready && !this.shoots.length) {
      mount(this.shootSection, head, h("p.muted", "Once the model is trained, describe your shots here."));
      return;
    }
    this.gallery = h("div.stack", { "data-testid": "shoots" });
    mount(this.shootSection, head, h("div.stack", ready ? this.shootForm() : null, this.gallery));
    for (const shoot of this.shoots) this.gallery.append(this.shootBlock(shoot));
  }

  shootForm() {
    const presets = this.presets;
    const aspects = ["1:1", "4:5", "3:4", "16:9", "9:16"];
    const descriptions = h("textarea.input", {
      id: "shoot-descriptions",
      name: "descriptions",
      rows: 3,
      placeholder: `the ${this.product.class_name} on a marble kitchen counter\na model wearing the ${this.product.class_name}, walking in the park`,
    });
    const chips = h(
      "div.chips",
      { role: "group", "aria-label": "Shot presets" },
      presets.map((p, i) =>
        h(
          "label.chip",
          { title: p.description || "" },
          h("input", { type: "checkbox", name: "preset", value: p.name, checked: i === 0 }),
          p.label || p.name,
        ),
      ),
    );
    const n = h("input.input", { id: "shoot-n", name: "n", type: "number", min: 1, max: 16, value: 2, inputmode: "numeric" });
    const aspect = h(
      "select.input",
      { id: "shoot-aspect", name: "aspect" },
      h("option", { value: "" }, "From the preset"),
      aspects.map((a) => h("option", { value: a }, a)),
    );
    const steps = h("input.input", { id: "shoot-steps", name: "steps", type: "number", min: 1, max: 150, placeholder: "default", inputmode: "numeric" });
    const best = h("input", { id: "shoot-best", name: "best", type: "checkbox" });
    const error = h("div.notice.bad", { role: "alert", hidden: true });
    const submit = h("button.btn.accent", { type: "submit", "data-testid": "start-shoot" }, icon("camera"), "Shoot");
    const fail = (message, focus) => {
      mount(error, icon("alert"), h("div.grow", rich(message)));
      error.hidden = false;
      focus?.focus();
    };
    const form = h(
      "form.stack",
      {
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          error.hidden = true;
          const lines = descriptions.value.split("\n").map((s) => s.trim()).filter(Boolean);
          if (!lines.length) return fail("Describe at least one shot, one per line.", descriptions);
          const picked = [...chips.querySelectorAll("input:checked")].map((i) => i.value);
          const body = { descriptions: lines };
          if (picked.length) body.presets = picked;
          const count = Number(n.value);
          if (!Number.isInteger(count) || count < 1) return fail("Shots per description must be a whole number from 1.", n);
          body.n = count;
          if (aspect.value) body.aspect = aspect.value;
          if (steps.value) body.steps = Number(steps.value);
          if (best.checked) {
            // Render twice as many and keep the highest-scoring: `best` replaces `n`.
            if (count > 8) return fail("With “Pick the best”, ask for at most 8 shots per description.", n);
            delete body.n;
            body.best = count;
          }
          let shoot;
          try {
            shoot = await busy(submit, () => api.post(`${this.base()}/shoots`, body));
          } catch (exc) {
            fail(exc.message);
            return markInvalid(form, exc.message);
          }
          this.shoots.unshift(shoot);
          this.gallery.prepend(this.shootBlock(shoot));
        },
      },
      field(descriptions, "Describe your shots", "One shot idea per line. Mention the product by what it is; the studio knows it's yours."),
      presets.length
        ? h("div.field", h("span.label", "Shot presets"), chips, h("span.hint", "Each description is shot in every preset you pick."))
        : null,
      h(
        "details.advanced",
        h("summary", "Options"),
        h(
          "div.grid-2",
          field(n, "Shots per description"),
          field(aspect, "Aspect ratio"),
          field(steps, "Sampling steps", "More is slower and finer."),
          h(
            "div.field",
            h("span.label", "Quality"),
            h("label.check", { for: "shoot-best" }, best, "Pick the best"),
            h("span.hint", "Renders twice as many and keeps the highest-scoring. Takes twice as long."),
          ),
        ),
      ),
      error,
      h("div.row", submit),
    );
    return form;
  }

  shootBlock(shoot) {
    const block = h("div.job", { "data-testid": "shoot", dataset: { shoot: shoot.id } });
    const state = { shoot, stop: null };
    const draw = () => {
      const s = state.shoot;
      const shots = s.shots || [];
      const expected = s.progress?.total || shots.length;
      const active = ACTIVE.has(s.status);
      const missing = shots.filter(isMissing).length;
      const head = h(
        "div.job-head",
        h(
          "div",
          h("strong", (s.request?.descriptions || s.descriptions || []).join(" · ") || "Shoot"),
          h("div.small.muted", [statusText(s, shots.length, expected), missing ? ` · ${missing} flagged` : ""].join("")),
        ),
        s.status === "succeeded"
          ? h("a.btn.small", { href: `/v1/shoots/${enc(s.id)}/download`, download: "", "data-testid": "download-zip" }, icon("download"), "Download all (.zip)")
          : active
            ? h("div.row", statusBadge(s.status), cancelButton(`/v1/shoots/${enc(s.id)}/cancel`, "Canceling the shoot…"))
            : statusBadge(s.status),
      );
      const gallery = h("div.gallery", { "data-testid": "gallery" }, shots.map((shot) => shotCard(shot)));
      if (active) {
        for (let i = shots.length; i < Math.max(expected, shots.length + 1); i++) {
          gallery.append(h("div.card.shot", h("div.placeholder", spinner())));
        }
      }
      const notices = [];
      if (s.status === "failed") {
        notices.push(h("div.notice.bad", { role: "alert" }, icon("alert"), h("div.grow", h("strong", "Shoot failed"), rich(errorText(s.error) || "Try again."))));
      }
      if (missing) {
        notices.push(
          h(
            "div.notice.warn",
            icon("alert"),
            h("div.grow", `${plural(missing, "shot")} may not show your product. They are marked; leave them out of your listings, or shoot again with more training or a plainer description.`),
          ),
        );
      }
      let bar = null;
      if (active) {
        const p = progressOf(s);
        bar = h("div.progress", h("div", { style: { width: `${p.total ? (100 * p.done) / p.total : 0}%` } }));
        if (!p.total) bar.classList.add("indeterminate");
      }
      mount(block, head, bar, notices, gallery);
    };
    const refresh = async () => {
      try {
        state.shoot = await api.get(`/v1/shoots/${enc(shoot.id)}`);
      } catch (exc) {
        toast(exc.message, "bad");
        return;
      }
      if (this.gone) return;
      draw();
    };
    draw();
    if (ACTIVE.has(shoot.status)) {
      // Each `shot` event means a new image in the gallery; `end` means the shoot is over.
      let pending = null;
      const soon = () => {
        if (!pending) pending = setTimeout(() => ((pending = null), refresh()), 250);
      };
      const stop = api.follow(
        `/v1/shoots/${enc(shoot.id)}/events`,
        {
          start: soon,
          shot: soon,
          end: async () => {
            stopAll();
            clearTimeout(pending);
            await refresh();
            if (state.shoot.status === "succeeded") toast("Your shots are ready.");
          },
        },
        () => refresh(),
      );
      const stopAll = () => {
        stop();
        this.stops.delete(stopAll);
      };
      this.stops.add(stopAll);
    }
    return block;
  }
}

// ---------------------------------------------------------------- pieces

/** The items of an API list: `{data: [...], count}`, or a plain array (presets). */
function listOf(body) {
  if (!body) return [];
  return Array.isArray(body) ? body : body.data || [];
}

function cancelButton(url, message) {
  const button = h(
    "button.btn.small",
    {
      type: "button",
      onclick: async () => {
        try {
          await busy(button, () => api.post(url, {}));
          toast(message);
        } catch (exc) {
          toast(exc.message, "bad");
        }
      },
    },
    "Cancel",
  );
  return button;
}

function sectionHead(n, id, title, lead, state, extra) {
  return h(
    "div.section-head",
    h(`span.step-no${state ? "." + state : ""}`, state === "done" ? icon("check") : String(n)),
    h("div.grow", h("h2", { id }, title), h("p", lead)),
    extra || null,
  );
}

function statusBadge(status) {
  const map = {
    queued: ["info", "Queued"],
    running: ["info", "Running"],
    succeeded: ["ok", "Done"],
    failed: ["bad", "Failed"],
    canceled: ["", "Canceled"],
  };
  const [kind, label] = map[status] || ["", status];
  return h(`span.badge${kind ? "." + kind : ""}`, { "data-testid": "status" }, label);
}

function statusText(s, have, expected) {
  if (s.status === "queued") return "Waiting for the GPU…";
  if (s.status === "running") return expected ? `${have} of ${expected} shots` : "Starting…";
  if (s.status === "succeeded") return plural(have, "shot");
  if (s.status === "canceled") return "Canceled";
  return "";
}

function progressOf(job) {
  const p = job.progress || {};
  return { done: p.done ?? p.step ?? 0, total: p.total ?? p.total_steps ?? 0 };
}

/** "samples/step-000120-0.png" → 120 */
function sampleStep(name) {
  const m = /step-0*(\d+)/.exec(name || "");
  return m ? Number(m[1]) : "";
}

function eventProgress(ev) {
  if (!ev) return { done: 0, total: 0 };
  const d = ev.data || {};
  return { done: ev.done ?? d.step ?? 0, total: ev.total ?? d.total ?? 0 };
}

function errorText(error) {
  if (!error) return "";
  if (typeof error === "string") return error;
  return error.message || "";
}

function isAccepted(r) {
  return r.status === "accepted";
}

function isMissing(shot) {
  return Boolean(shot.product_missing ?? (shot.scores && shot.scores.present === false));
}

function fileName(path, full = false) {
  const s = typeof path === "string" ? path : path.name || path.file || "";
  return full ? s : s.split("/").pop();
}

function fileUrl(t, f) {
  if (typeof f === "object" && f.url) return f.url;
  return `/v1/trainings/${enc(t.id)}/files/${fileName(f)
    .split("/")
    .map(enc)
    .join("/")}`;
}

function formatBytes(n) {
  if (n < 1024 * 1024) return `${Math.max(1, Math.round(n / 1024))} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

function rank(result) {
  if (!isAccepted(result)) return 0;
  return result.photo?.warnings?.length ? 1 : 2;
}

function resultList(results) {
  // What needs the merchant's attention first: rejected files, then photos with warnings;
  // a long run of plain "accepted" rows folds away behind a button.
  const sorted = [...results].sort((a, b) => rank(a) - rank(b));
  const plain = sorted.filter((r) => rank(r) === 2);
  const fold = plain.length > 8 ? plain.slice(5) : [];
  const shown = sorted.filter((r) => !fold.includes(r));
  const list = h(
    "ul.results",
    { "data-testid": "upload-results", "aria-label": "Upload results" },
    shown.map(resultRow),
  );
  if (fold.length) {
    const more = h(
      "li.more",
      h(
        "button.btn.ghost.small",
        { type: "button", onclick: () => more.replaceWith(...fold.map(resultRow)) },
        `Show ${fold.length} more accepted photos`,
      ),
    );
    list.append(more);
  }
  return list;
}

function resultRow(r) {
  const ok = isAccepted(r);
  const skipped = r.status === "skipped";
  const warned = ok && r.photo?.warnings?.length;
  const thumb =
    ok && r.preview
      ? h("img.thumb", { src: URL.createObjectURL(r.preview), alt: "" })
      : h(`span.thumb${ok || skipped ? "" : ".broken"}`, icon(ok ? "check" : "x"));
  const why = ok
    ? (r.photo?.warnings || []).join(" ") || "Good to train on"
    : r.message || r.reason || "Not used";
  return h(
    `li.${ok ? "accepted" : skipped ? "skipped" : "rejected"}`,
    { "data-testid": `result-${r.status}` },
    thumb,
    h("div.what", h("div.file", r.file_name || "file"), h("div.why", why)),
    h(
      `span.badge.${ok ? (warned ? "warn" : "ok") : skipped ? "plain" : "bad"}`,
      ok ? "Accepted" : skipped ? "Skipped" : "Rejected",
    ),
  );
}

const VERDICTS = {
  ready: ["ok", "Ready to train", "A good set: enough distinct photos and nothing to fix."],
  usable: ["warn", "Usable", "You can train on these. The tips below will make the model better."],
  "not enough": ["bad", "Not enough yet", "Add the photos the tips ask for before training."],
};

function reportCard(report) {
  const [kind, label, lead] = VERDICTS[report.verdict] || ["", report.verdict, ""];
  const c = report.counts || {};
  const stat = (n, what) => h("div", h("b", String(n ?? 0)), what);
  return h(
    "div.report",
    { "data-testid": "photo-report" },
    h(
      "div.report-head",
      h("div", h("h3", "Photo-set report"), h("p.small.muted", lead)),
      h(`span.badge.${kind}`, { "data-testid": "verdict" }, label),
    ),
    h(
      "div.counts",
      stat(c.accepted, "photos"),
      stat(c.distinct, "distinct"),
      stat((c.exact_duplicates || 0) + (c.near_duplicates || 0), "duplicates"),
      stat((report.accepted || []).filter((p) => p.warnings?.length).length, "warnings"),
    ),
    report.advice?.length
      ? h("ul.advice", { "data-testid": "advice" }, report.advice.map((a) => h("li", a)))
      : null,
  );
}

function photoStrip(photos) {
  if (!photos.length) return null;
  return h(
    "div.stack",
    h("h3", "Your photos"),
    h(
      "div.photo-strip",
      photos.map((p) => h("img", { src: p.url, alt: p.file_name, loading: "lazy", decoding: "async", title: p.file_name })),
    ),
  );
}

function shotCard(shot) {
  const missing = isMissing(shot);
  const url = shot.url || `/v1/shots/${enc(shot.id)}/image`;
  const ar = shot.width && shot.height ? `${shot.width} / ${shot.height}` : "1";
  return h(
    `article.card.shot${missing ? ".missing" : ""}`,
    { "data-testid": "shot" },
    h(
      "button.frame",
      { type: "button", "aria-label": "View this shot larger", onclick: () => shotDialog(shot) },
      h("img", { src: url, alt: shot.description || shot.prompt || "Shot", style: { "--ar": ar } }),
      missing ? h("span.badge.bad.flag", { "data-testid": "product-missing" }, "Product missing") : null,
    ),
    h(
      "div.body",
      h("p.desc", shot.description || shot.prompt || ""),
      scoreLine(shot),
      h(
        "div.foot",
        shot.preset ? h("span.badge.plain", presetLabel(shot.preset)) : h("span"),
        h("a.btn.ghost.small", { href: url, download: "", "aria-label": "Download this shot", "data-testid": "download-shot" }, icon("download")),
      ),
    ),
  );
}

let presetLabels = {};
function presetLabel(name) {
  return presetLabels[name] || name;
}

function scoreLine(shot) {
  const s = shot.scores || {};
  const fmt = (v) => (v == null ? "–" : Number(v).toFixed(2));
  return h(
    "div.scores",
    { title: "How much the shot looks like your photos (DINO, CLIP-I) and the description (CLIP-T)" },
    h("span", "DINO ", h("b", fmt(s.dino))),
    h("span", "CLIP-I ", h("b", fmt(s.clip_i))),
    h("span", "CLIP-T ", h("b", fmt(s.clip_t))),
  );
}

/** One shot, large, with its recipe: what a merchant checks before using it. */
function shotDialog(shot) {
  const missing = isMissing(shot);
  const url = shot.url || `/v1/shots/${enc(shot.id)}/image`;
  const row = (label, value) => (value == null || value === "" ? null : h("div", h("dt", label), h("dd", String(value))));
  const dialog = h(
    "dialog.viewer",
    { "aria-label": "Shot" },
    h("img", { src: url, alt: shot.description || "Shot" }),
    h(
      "div.viewer-side",
      h("div.row", missing ? h("span.badge.bad", "Product missing") : h("span.badge.ok", "Product present"), shot.preset ? h("span.badge.plain", presetLabel(shot.preset)) : null),
      h("p", shot.description || ""),
      scoreLine(shot),
      missing
        ? h("p.small.muted", "The judge couldn't find your product in this shot. Leave it out of your listings.")
        : null,
      h(
        "dl",
        row("Size", shot.width && shot.height ? `${shot.width} × ${shot.height}` : null),
        row("Seed", shot.seed),
        row("Prompt", shot.prompt),
      ),
      h(
        "div.row",
        h("a.btn.primary", { href: url, download: "" }, icon("download"), "Download"),
        h("button.btn.ghost", { type: "button", onclick: () => dialog.close() }, "Close"),
      ),
    ),
  );
  dialog.addEventListener("close", () => dialog.remove());
  dialog.addEventListener("click", (e) => e.target === dialog && dialog.close()); // the backdrop
  document.body.append(dialog);
  dialog.showModal();
}
