// The garment panel: registering a garment and the grid of garments to check for a try-on.
import { api, authorizedImage, errorText, fileDataUrl } from "./api.js";
import { $, show } from "./dom.js";

function card(garment, checked) {
  const item = document.createElement("label");
  item.className = "tile garment";
  item.dataset.clothingId = garment.clothingId;
  item.dataset.category = garment.category;
  const img = document.createElement("img");
  img.alt = "";  // the label's text names the garment
  const check = document.createElement("input");
  check.type = "checkbox";
  check.value = garment.clothingId;
  check.className = "garment-check";
  check.checked = checked;
  const name = document.createElement("span");
  name.textContent = garment.clothingId;
  const category = document.createElement("span");
  category.className = "category";
  category.textContent = garment.category;
  item.title = garment.description;
  item.append(img, check, name, category);
  return [item, img];
}

export function checkedGarments() {
  return [...document.querySelectorAll(".garment-check:checked")].map((c) => c.value);
}

// The grid anew, keeping what was checked.
export async function refreshGarments() {
  try {
    const checked = new Set(checkedGarments());
    const list = await api("GET", "/api/clothing");
    const cards = list.items.map((g) => [card(g, checked.has(g.clothingId)), g.clothingId]);
    $("garments").replaceChildren(...cards.map(([[item]]) => item));
    if (!cards.length) $("garments").textContent = "No garments registered yet.";
    await Promise.all(cards.map(async ([[, img], id]) => {
      img.src = await authorizedImage(`/api/clothing/${encodeURIComponent(id)}/image`);
    }));
  } catch (error) {
    show("garment-status", errorText(error), true);
  }
}

export async function registerGarment() {
  show("garment-status", "registering...");
  $("register-garment").disabled = true;
  try {
    const body = {
      image: await fileDataUrl($("garment-file")),
      description: $("garment-description").value,
      category: $("garment-category").value,
    };
    if ($("garment-id").value.trim()) body.clothingId = $("garment-id").value.trim();
    const garment = await api("POST", "/api/clothing", body);
    show("garment-status", `registered ${garment.clothingId}`);
    await refreshGarments();
  } catch (error) {
    show("garment-status", errorText(error), true);
  } finally {
    $("register-garment").disabled = false;
  }
}
