// The results table (one row per item: state, each phase's milliseconds, batch size, cached,
// the image) and the full-size viewer.
import { errorText, imageBlob } from "./api.js";
import { $ } from "./dom.js";

const PHASES = ["queue", "artifacts", "encode", "diffusion", "decode", "png", "total"];
const COLUMNS = ["#", "Garment", "Status", ...PHASES.map((p) => `${p} ms`), "Batch", "Cached", "Result"];
const MIME = [["iVBORw0KGgo", "image/png"], ["/9j/", "image/jpeg"], ["UklGR", "image/webp"]];

function mimeOf(base64) {
  return MIME.find(([prefix]) => base64.startsWith(prefix))?.[1] ?? "image/png";
}

// Where a result's image comes from, the one place that decides: its imageUrl when the API
// gives one (fetched with the token, which an <img> cannot send), else the base64 the item
// carries; null when it has neither yet. Returns the source for an <img> and its MIME type.
export async function imageSource(item) {
  if (item.imageUrl) {
    const blob = await imageBlob(item.imageUrl);
    return { src: URL.createObjectURL(blob), type: blob.type };
  }
  if (item.image) {
    const type = mimeOf(item.image);
    return { src: `data:${type};base64,${item.image}`, type };
  }
  return null;
}

function extensionOf(type) {
  return { "image/jpeg": "jpg", "image/webp": "webp" }[type] ?? "png";
}

// A state and its error, without the error that only repeats that it was cancelled.
export function outcome(state, error) {
  return error && !error.startsWith("JobCancelled:") ? `${state}: ${error}` : state;
}

export function clearResults() {
  $("results").replaceChildren();
  $("results-table").hidden = true;
}

function row(index) {
  const existing = $("results").querySelector(`tr[data-index="${index}"]`);
  if (existing) return existing;
  const tr = document.createElement("tr");
  tr.dataset.index = index;
  for (const label of COLUMNS) {
    const td = document.createElement("td");
    td.dataset.label = label;
    tr.append(td);
  }
  tr.cells[1].className = "text garment-name";
  tr.cells[2].className = "text state";
  const later = [...$("results").rows].find((r) => Number(r.dataset.index) > index);
  $("results").insertBefore(tr, later ?? null);
  $("results-table").hidden = false;
  return tr;
}

function ms(value) {
  return value >= 100 ? String(Math.round(value)) : value.toFixed(1);
}

// An item of the job (from its status or an `item` event) in its row; the image once.
export async function showItem(jobId, item) {
  const tr = row(item.index);
  tr.className = item.state;
  tr.cells[0].textContent = String(item.index + 1);
  tr.cells[1].textContent = item.clothingId ?? "(inline)";
  tr.cells[2].textContent = outcome(item.state, item.error);
  PHASES.forEach((phase, i) => {
    tr.cells[3 + i].textContent = item.timings ? ms(item.timings[phase] ?? 0) : "–";
  });
  const done = item.state === "succeeded";
  tr.cells[10].textContent = item.batchSize ? String(item.batchSize) : "–";
  tr.cells[11].textContent = done ? (item.resultCached ? "yes" : "no") : "–";
  if (!done || tr.dataset.image) return;
  tr.dataset.image = "loading";
  try {
    const source = await imageSource(item);
    if (!source) { delete tr.dataset.image; return; }
    const name = `tryon-${jobId}-${item.index + 1}-${item.clothingId ?? "inline"}.${extensionOf(source.type)}`;
    tr.cells[12].replaceChildren(...resultControls(source.src, name, item));
    tr.dataset.image = "shown";
  } catch (error) {
    delete tr.dataset.image;
    tr.cells[12].textContent = errorText(error);
    tr.cells[12].classList.add("error");
  }
}

function resultControls(source, name, item) {
  const open = document.createElement("button");
  open.type = "button";
  open.className = "thumb";
  const caption = `try-on of ${item.clothingId ?? "the inline garment"} (item ${item.index + 1})`;
  open.setAttribute("aria-label", `view ${caption} full size`);
  const img = document.createElement("img");
  img.src = source;
  img.alt = caption;
  open.append(img);
  open.addEventListener("click", () => view(source, name, caption, open));
  const download = document.createElement("a");
  download.href = source;
  download.download = name;
  download.className = "download";
  download.textContent = "download";
  return [open, " ", download];
}

function view(source, name, caption, opener) {
  $("viewer-image").src = source;
  $("viewer-image").alt = caption;
  $("viewer-caption").textContent = caption;
  $("viewer-image").decode().then(() => {
    const { naturalWidth: w, naturalHeight: h } = $("viewer-image");
    $("viewer-caption").textContent = `${caption}, ${w} x ${h} px`;
  }, () => {});
  $("viewer-download").href = source;
  $("viewer-download").download = name;
  $("viewer").addEventListener("close", () => opener.focus(), { once: true });
  $("viewer").showModal();
  $("viewer-close").focus();
}

export function initViewer() {
  $("viewer-close").addEventListener("click", () => $("viewer").close());
}
