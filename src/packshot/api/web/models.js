// Base models on the page, one owner for the product page and the catalogue alike: the models to
// suggest (GET /v1/models: each model family's own, or the operator's allowed ones), what an
// empty field means (the training and instant defaults), and each model's steps per training
// preset. The API still takes any Hub id the operator allows.

import * as api from "./api.js";
import { h } from "./dom.js";

/** The base models, asked for once per page load (an error: none, asked again later). */
export const loadModels = api.getOnce("/v1/models", { training_default: "", instant_default: "", data: [] });

/** A <datalist> of the models that fit `use`: "train" (packshot trains on them) or "instant"
 *  (they take reference photos), each labelled with what it is and needs. */
export function modelOptions(id, catalogue, use) {
  const fits = catalogue.data.filter((m) => (use === "instant" ? m.takes_references : m.trains));
  return h("datalist", { id }, fits.map((m) => h("option", { value: m.id, label: m.label })));
}

/** What the field's model is: the one typed, or the default an empty field stands for. */
export function modelNamed(catalogue, typed, use) {
  const name = typed.trim() || (use === "instant" ? catalogue.instant_default : catalogue.training_default);
  return catalogue.data.find((m) => m.id === name) || null;
}

/** The steps a training preset takes on the named model; a model not listed here: the
 *  default's, the best guess (the server decides). null: none known. */
export function presetSteps(catalogue, typed, preset) {
  const steps = (m) => m?.training_steps?.[preset] ?? null;
  return steps(modelNamed(catalogue, typed, "train")) ?? steps(modelNamed(catalogue, "", "train"));
}
