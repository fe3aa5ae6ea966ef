// Marketplace delivery on the page, one owner for the product page and the catalogue alike:
// the profiles a shoot may deliver to (GET /v1/marketplaces) as chips, each image's verdicts as
// badges, the counts per profile, and a delivery's downloads for the shop (…/exports/{format}).

import * as api from "./api.js";
import { h, icon, rich } from "./dom.js";

const KIND = { pass: "ok", fixed: "ok", warn: "warn", fail: "bad" };
// The shop files besides the zip; each links every image at the address the zip is put online.
const SHOP_FILES = [
  ["shopify", "Shopify CSV"],
  ["woocommerce", "WooCommerce CSV"],
  ["google", "Google Merchant Center feed"],
];
const OWN_PROFILE = { shopify: "shopify", google: "google" }; // the images each format asks for
const HTTP_URL = /^https?:\/\/[^\s/$.?#][^\s]*$/;

/** The marketplace profiles, asked for once per page load (an error: none, asked again later). */
export const loadMarketplaces = api.getOnce("/v1/marketplaces", []);

/** "Deliver to marketplaces": a chip per profile. `drawn`: the form's shots are drawn by the
 * model, so the profiles that refuse them (Amazon's main image) or warn say so. */
export function profilesField(list, { drawn = false } = {}) {
  if (!list.length) return null;
  const chips = h(
    "div.chips",
    { role: "group", "aria-label": "Marketplaces" },
    list.map((m) =>
      h(
        "label.chip",
        { title: drawn && m.generated !== "ok" ? m.generated_rule || "" : m.label },
        h("input", { type: "checkbox", name: "profiles", value: m.name }),
        m.label,
      ),
    ),
  );
  const refused = list.filter((m) => m.generated === "fail").map((m) => m.label);
  const hint = drawn && refused.length
    ? `Each image is checked against each marketplace's rules and fixed where that is honest. ${refused.join(", ")} ${refused.length === 1 ? "takes" : "take"} only photographs of the real product: drawn shots fail there, so use “Keep my product's pixels” on white for them.`
    : "Each image is checked against each marketplace's rules and fixed where that is honest; you get the files and your shop's CSV.";
  return h("div.field", { "data-testid": "profiles" }, h("span.label", "Deliver to marketplaces"), chips, h("span.hint", hint));
}

/** The profiles picked in a `profilesField` (none: no delivery). */
export function pickedProfiles(fieldEl) {
  return fieldEl ? [...fieldEl.querySelectorAll("input[name=profiles]:checked")].map((i) => i.value) : [];
}

/** One image's verdicts: a badge per profile, its title the reason it fails or warns. */
export function badgeList(badges) {
  if (!badges?.length) return null;
  return h(
    "div.badges",
    badges.map((b) =>
      h(
        `span.badge.${KIND[b.status] || "plain"}`,
        { title: b.title, "data-testid": "badge", "data-profile": b.profile, "data-status": b.status },
        `${b.label}: ${b.status}`,
      ),
    ),
  );
}

/** The verdicts with their reasons written out (the shot's large view: no tooltips on phones). */
export function badgeReasons(badges) {
  if (!badges?.length) return null;
  return h(
    "ul.verdicts",
    { "data-testid": "verdicts" },
    badges.map((b) => h("li", h(`span.badge.${KIND[b.status] || "plain"}`, `${b.label}: ${b.status}`), h("span.small.muted", rich(b.title)))),
  );
}

/** Counts per profile ({profile: {pass, fixed, warn, fail}}) as one badge each. */
export function complianceBadges(compliance, list) {
  const entries = Object.entries(compliance || {});
  if (!entries.length) return null;
  const label = Object.fromEntries((list || []).map((m) => [m.name, m.label]));
  return entries.map(([name, counts]) => {
    const bad = counts.fail || 0;
    const kind = bad ? "bad" : counts.warn ? "warn" : "ok";
    const ok = (counts.pass || 0) + (counts.fixed || 0) + (counts.warn || 0);
    return h(`span.badge.${kind}`, { "data-profile": name }, `${label[name] || name}: ${bad ? `${bad} fail` : `${ok} ok`}`);
  });
}

/** A delivery's downloads for the shop: the zip at once (the images sized for each marketplace,
 * in per-product folders, with the report); the CSVs and the feed once the merchant says where
 * the zip's folders will be online, since they link every image there. */
export function deliveryDownloads(delivery, list) {
  const usable = delivery.profiles.filter((p) => {
    const c = delivery.compliance?.[p] || {};
    return (c.pass || 0) + (c.fixed || 0) + (c.warn || 0) > 0;
  });
  const uid = Math.random().toString(36).slice(2, 8);
  const label = Object.fromEntries((list || []).map((m) => [m.name, m.label]));
  const zip = h(
    "a.btn.small",
    { href: delivery.exports.zip, download: "", "data-testid": "export-zip" },
    icon("download"),
    "Marketplace images (.zip)",
  );
  const base = h("input.input", {
    id: `base-url-${uid}`,
    name: "image_base_url",
    type: "url",
    inputmode: "url",
    placeholder: "https://cdn.example.com/packshot/",
    spellcheck: "false",
    autocomplete: "off",
  });
  const pick =
    usable.length > 1
      ? h(
          "select.input",
          { id: `profile-${uid}`, name: "profile" },
          h("option", { value: "" }, "Each file's own marketplace"),
          usable.map((p) => h("option", { value: p }, label[p] || p)),
        )
      : null;
  const links = SHOP_FILES.map(([fmt, text]) =>
    h("a.btn.small.ghost", { "data-testid": `export-${fmt}`, "aria-disabled": "true" }, icon("download"), text),
  );
  const profileFor = (fmt) => pick?.value || (usable.includes(OWN_PROFILE[fmt]) ? OWN_PROFILE[fmt] : usable[0]);
  const update = () => {
    const url = base.value.trim();
    SHOP_FILES.forEach(([fmt], i) => {
      const link = links[i];
      if (HTTP_URL.test(url) && usable.length) {
        const query = new URLSearchParams({ image_base_url: url, profile: profileFor(fmt) });
        link.href = `${delivery.exports[fmt]}?${query}`;
        link.setAttribute("download", "");
        link.removeAttribute("aria-disabled");
      } else {
        link.removeAttribute("href");
        link.removeAttribute("download");
        link.setAttribute("aria-disabled", "true");
      }
    });
  };
  base.addEventListener("input", update);
  pick?.addEventListener("change", update);
  return h(
    "div.deliveries.stack",
    { "data-testid": "delivery" },
    h("div.row", h("h3", "For your shop"), complianceBadges(delivery.compliance, list)),
    h("div.row", zip, h("span.small.muted", "Every image sized and checked for each marketplace, with the report.")),
    usable.length
      ? h(
          "div.grid-2",
          h(
            "div.field",
            h("label", { for: base.id }, "Where the images will be online"),
            base,
            h("span.hint", "Unzip, upload the folders to this address; the CSVs and the feed link every image there."),
          ),
          pick ? h("div.field", h("label", { for: pick.id }, "Images for"), pick) : null,
        )
      : h("p.small.muted", "No image passed a marketplace's rules, so there is nothing for the shop's CSV yet."),
    usable.length ? h("div.row", links) : null,
  );
}
