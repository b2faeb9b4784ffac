// The person panel: what is registered (photo, categories, masks, pose) and registering anew.
import { ApiError, api, authorizedImage, errorText, fileDataUrl } from "./api.js";
import { $, show } from "./dom.js";

function describe(person) {
  const computed = person.detection?.computed ?? [];
  const source = computed.length ? `${computed.join(" and ")} computed from the photo` : "masks and pose uploaded";
  return [`${person.framing || "fitted"} framing`, source, ...person.warnings, `version ${person.version}`]
    .join("; ");
}

function tile(caption, dataImage) {
  const item = document.createElement("figure");
  item.className = "tile person-image";
  item.dataset.image = dataImage;
  item.style.margin = "0";
  const img = document.createElement("img");
  img.alt = caption;
  const label = document.createElement("figcaption");
  label.textContent = caption;
  item.append(img, label);
  return [item, img];
}

// The photo once, the DensePose image once, then each category's mask and gray preview.
async function showImages(person) {
  const first = person.categories[0];
  const shown = [["human_img", first, "photo"], ["pose", first, "DensePose"]];
  for (const category of person.categories) {
    shown.push(["mask", category, `${category} mask`], ["mask_gray", category, `${category} gray`]);
  }
  const tiles = shown.map(([name, category, caption]) => [tile(caption, `${category}/${name}`), category, name]);
  $("person-images").replaceChildren(...tiles.map(([[item]]) => item));
  await Promise.all(tiles.map(async ([[, img], category, name]) => {
    img.src = await authorizedImage(`/api/person/images/${category}/${name}`);
  }));
}

function showPerson(person) {
  const summary = $("person-summary");
  const categories = document.createElement("span");
  categories.className = "categories";
  categories.textContent = person.categories.join(", ");
  summary.replaceChildren("Registered person, categories: ", categories, `. ${describe(person)}.`);
  return showImages(person);
}

export async function loadPerson() {
  try {
    await showPerson(await api("GET", "/api/person"));
  } catch (error) {
    const none = error instanceof ApiError && error.status === 404;
    $("person-summary").textContent = none ? "No person registered yet." : errorText(error);
    $("person-summary").classList.toggle("error", !none);
    $("person-images").replaceChildren();
  }
}

// One registration: the photo, every mask chosen (one per category) and the DensePose image.
export async function registerPerson() {
  show("person-status", "registering...");
  $("register-person").disabled = true;
  try {
    const body = { image: await fileDataUrl($("person-file")), framing: $("person-framing").value };
    const masks = {};
    for (const input of document.querySelectorAll(".mask-file")) {
      if (input.files[0]) masks[input.dataset.category] = await fileDataUrl(input);
    }
    if (Object.keys(masks).length) body.masks = masks;
    if ($("pose-file").files[0]) body.pose = await fileDataUrl($("pose-file"));
    const person = await api("PUT", "/api/person", body);
    show("person-status", `registered: ${person.categories.join(", ")}`);
    await showPerson(person);
  } catch (error) {
    show("person-status", errorText(error), true);
  } finally {
    $("register-person").disabled = false;
  }
}
