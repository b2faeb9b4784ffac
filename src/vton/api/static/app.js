// The vton test page: registration, try-on jobs with progress over server-sent events.
"use strict";

const $ = (id) => document.getElementById(id);
let currentJob = null;

$("token").value = new URLSearchParams(location.search).get("token")
  || localStorage.getItem("vton-token") || "";
$("token").addEventListener("change", () => localStorage.setItem("vton-token", $("token").value));

function headers(json = true) {
  const h = { Authorization: `Bearer ${$("token").value.trim()}` };
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method, headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.status === 204 ? null : response.json();
}

function dataUrl(input) {
  const file = input.files[0];
  if (!file) return Promise.reject(new Error(`choose a file for ${input.id}`));
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function show(id, text, isError = false) {
  $(id).textContent = text;
  $(id).classList.toggle("error", isError);
}

async function authorizedImage(path) {
  const response = await fetch(path, { headers: headers(false) });
  return response.ok ? URL.createObjectURL(await response.blob()) : "";
}

function describePerson(person) {
  const found = person.detection
    ? `; computed ${person.detection.computed.join(" and ") || "nothing"}, `
      + `${person.detection.people} ${person.detection.people === 1 ? "person" : "people"} found`
    : "; masks and pose uploaded";
  const warnings = person.warnings.length ? ` (${person.warnings.join("; ")})` : "";
  return `registered: ${person.categories.join(", ")}, ${person.framing || "fitted"}${found}`
    + `${warnings}, version ${person.version}`;
}

// The person's stored images: the DensePose image once, each category's mask and gray preview.
async function showPerson(person) {
  const box = $("person-images");
  box.replaceChildren();
  const shown = [["pose", person.categories[0], "DensePose"]];
  for (const category of person.categories) {
    shown.push(["mask", category, `${category} mask`], ["mask_gray", category, `${category} gray`]);
  }
  for (const [name, category, caption] of shown) {
    const item = document.createElement("div");
    item.className = "person-image";
    item.dataset.image = `${category}/${name}`;
    const img = document.createElement("img");
    img.alt = caption;
    img.src = await authorizedImage(`/api/person/images/${category}/${name}`);
    item.append(img, caption);
    box.append(item);
  }
}

async function loadPerson() {
  try {
    const person = await api("GET", "/api/person");
    show("person-status", describePerson(person));
    await showPerson(person);
  } catch (error) {
    show("person-status", error.message.startsWith("404") ? "no person registered yet" : error.message);
  }
}

$("register-person").addEventListener("click", async () => {
  show("person-status", "registering...");
  $("register-person").disabled = true;
  try {
    const body = { image: await dataUrl($("person-file")), framing: $("person-framing").value };
    if ($("mask-file").files[0]) {
      body.masks = { [$("person-category").value]: await dataUrl($("mask-file")) };
    }
    if ($("pose-file").files[0]) body.pose = await dataUrl($("pose-file"));
    const person = await api("PUT", "/api/person", body);
    show("person-status", describePerson(person));
    await showPerson(person);
  } catch (error) {
    show("person-status", error.message, true);
  } finally {
    $("register-person").disabled = false;
  }
});

$("register-garment").addEventListener("click", async () => {
  show("garment-status", "registering...");
  try {
    const body = {
      image: await dataUrl($("garment-file")),
      description: $("garment-description").value,
      category: $("garment-category").value,
    };
    if ($("garment-id").value.trim()) body.clothingId = $("garment-id").value.trim();
    const garment = await api("POST", "/api/clothing", body);
    show("garment-status", `registered ${garment.clothingId}`);
    await refreshGarments();
  } catch (error) { show("garment-status", error.message, true); }
});

function garmentThumbnail(id) {
  return authorizedImage(`/api/clothing/${encodeURIComponent(id)}/image`);
}

async function refreshGarments() {
  try {
    const list = await api("GET", "/api/clothing");
    const box = $("garments");
    box.replaceChildren();
    for (const garment of list.items) {
      const item = document.createElement("label");
      item.className = "garment";
      const img = document.createElement("img");
      img.alt = garment.clothingId;
      img.src = await garmentThumbnail(garment.clothingId);
      const check = document.createElement("input");
      check.type = "checkbox";
      check.value = garment.clothingId;
      check.className = "garment-check";
      item.append(img, check, ` ${garment.clothingId}`);
      box.append(item);
    }
  } catch (error) { show("garment-status", error.message, true); }
}
$("refresh-garments").addEventListener("click", refreshGarments);

// A result image (events carry its URL) as a data: URL, so it outlives the job's TTL.
async function resultDataUrl(path) {
  const response = await fetch(path, { headers: headers(false) });
  if (!response.ok) throw new Error(`${response.status}: result unavailable`);
  const blob = await response.blob();
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

async function addResult(item) {
  const box = document.createElement("div");
  box.className = "result";
  box.dataset.clothingId = item.clothingId || "";
  $("results").append(box);  // now, so results keep the items' order
  if (item.imageUrl) {
    const ms = item.timings ? ` (${Math.round(item.timings.total)} ms)` : "";
    const caption = `${item.clothingId}${item.resultCached ? " (cached)" : ""}${ms}`;
    try {
      const img = document.createElement("img");
      img.src = await resultDataUrl(item.imageUrl);
      img.alt = `try-on of ${item.clothingId}`;
      box.append(img, caption);
    } catch (error) {
      box.classList.add("error");
      box.append(`${caption}: ${error.message}`);
    }
  } else {
    box.classList.add("error");
    box.append(`${item.clothingId}: ${item.error}`);
  }
}

// Server-sent events over fetch (EventSource cannot send the Authorization header).
async function followEvents(jobId, onEvent) {
  const response = await fetch(`/api/jobs/${jobId}/events`, { headers: headers(false) });
  if (!response.ok) throw new Error(`${response.status}: events unavailable`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data) onEvent(event, JSON.parse(data));
    }
  }
}

$("tryon").addEventListener("click", async () => {
  const ids = [...document.querySelectorAll(".garment-check:checked")].map((c) => c.value);
  $("results").replaceChildren();
  if (!ids.length) { show("progress-text", "check at least one garment", true); return; }
  const options = {
    denoiseSteps: Number($("steps").value), seed: Number($("seed").value),
    pasteBack: $("paste-back").checked, fit: $("fit").value,
  };
  const body = ids.length === 1
    ? { type: "single", clothingId: ids[0], ...options }
    : { type: "batch", clothingIds: ids, ...options };
  try {
    show("progress-text", "queued");
    $("progress").value = 0;
    const job = await api("POST", "/api/jobs", body);
    currentJob = job.jobId;
    $("cancel").disabled = false;
    await followEvents(job.jobId, (event, data) => {
      if (event === "progress") {
        $("progress").value = data.step / data.totalSteps;
        show("progress-text", `step ${data.step} of ${data.totalSteps}`);
      } else if (event === "item") {
        addResult(data);
      } else if (event === "finished") {
        show("progress-text", data.error ? `${data.state}: ${data.error}` : data.state,
          data.state !== "succeeded");
        if (data.state === "succeeded") $("progress").value = 1;
      }
    });
  } catch (error) {
    show("progress-text", error.message, true);
  } finally {
    currentJob = null;
    $("cancel").disabled = true;
  }
});

$("cancel").addEventListener("click", async () => {
  if (currentJob) {
    try { await api("DELETE", `/api/jobs/${currentJob}`); }
    catch (error) { show("progress-text", error.message, true); }
  }
});

if ($("token").value) { loadPerson(); refreshGarments(); }
