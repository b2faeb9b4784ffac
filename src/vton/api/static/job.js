// A try-on job: submitting it, following it to its end (status, then events), cancelling it,
// and coming back to it after a reload (its id is kept in the address: ?job=<id>).
import { ApiError, api, errorText, followEvents } from "./api.js";
import { $, show } from "./dom.js";
import { checkedGarments } from "./garments.js";
import { clearResults, outcome, showItem } from "./results.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const RETRY_MS = 1000;
let currentJob = null;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const jobPath = (jobId) => `/api/jobs/${encodeURIComponent(jobId)}`;

// Try on is disabled while a job runs (one job at a time from this page), Cancel only then;
// other panels hear of it as a "vton:job" event ({running} in its detail).
function setCurrentJob(jobId) {
  currentJob = jobId;
  $("tryon").disabled = jobId !== null;
  $("cancel").disabled = jobId === null;
  document.dispatchEvent(new CustomEvent("vton:job", { detail: { running: jobId !== null } }));
}

export const jobRunning = () => currentJob !== null;

function rememberJob(jobId) {
  const url = new URL(location.href);
  url.searchParams.set("job", jobId);
  if (url.hash.startsWith("#job=")) url.hash = "";
  history.replaceState(null, "", url);
}

// The job named in the address: ?job=<id> or #job=<id>.
export function jobInAddress() {
  return new URLSearchParams(location.search).get("job")
    || new URLSearchParams(location.hash.slice(1)).get("job");
}

function showProgress(step, total) {
  $("progress").value = total ? step / total : 0;
  show("progress-text", `step ${step} of ${total}`);
}

function showJobLine(jobId, type, state) {
  const id = document.createElement("code");
  id.textContent = jobId;
  $("job-line").replaceChildren("Job ", id, ` (${type}): ${state}`);
  $("job-line").dataset.type = type;
}

// Wall time from submission to the end, and the try-ons per second it makes.
function showSummary(status) {
  const wall = status.finishedAt - status.createdAt;
  const succeeded = status.results.filter((r) => r.state === "succeeded").length;
  const rate = wall > 0 ? (succeeded / wall).toFixed(2) : "–";
  $("summary").textContent = `Job wall time ${wall.toFixed(2)} s; ${succeeded} of `
    + `${status.results.length} succeeded; ${rate} try-ons per second`;
}

function showStatus(status) {
  showJobLine(status.jobId, status.type, status.state);
  for (const item of status.results) showItem(status.jobId, item);
  if (!FINISHED.has(status.state)) {
    showProgress(status.step, status.totalSteps);
    return;
  }
  if (status.state === "succeeded") $("progress").value = 1;
  show("progress-text", outcome(status.state, status.error), status.state !== "succeeded");
  showSummary(status);
}

function onEvent(jobId, event, data) {
  if (event === "progress") {
    showProgress(data.step, data.totalSteps);
    showJobLine(jobId, $("job-line").dataset.type, "running");
  } else if (event === "item") {
    showItem(jobId, data);
  }
}

// Follows the job to its end: its status now, its events, then its status again (which also
// holds any item that ended without an event); a stream that ends early is opened again.
async function follow(jobId) {
  setCurrentJob(jobId);
  rememberJob(jobId);
  try {
    let status = await api("GET", jobPath(jobId));
    showStatus(status);
    let lastEventId = null;
    while (!FINISHED.has(status.state)) {
      try {
        lastEventId = await followEvents(
          `${jobPath(jobId)}/events`, (event, data) => onEvent(jobId, event, data), lastEventId,
        );
      } catch (error) {
        if (error instanceof ApiError && error.status >= 400 && error.status < 500) throw error;
        await sleep(RETRY_MS);  // the server went away for a moment: ask again
      }
      status = await api("GET", jobPath(jobId));
      showStatus(status);
      if (!FINISHED.has(status.state)) await sleep(RETRY_MS);
    }
  } catch (error) {
    show("progress-text", errorText(error), true);
  } finally {
    setCurrentJob(null);
  }
}

function request(clothingIds) {
  const options = {
    denoiseSteps: Number($("steps").value),
    seed: Number($("seed").value),
    guidanceScale: Number($("guidance").value),
    scheduler: $("scheduler").value,
    pasteBack: $("paste-back").checked,
    fit: $("fit").value,
  };
  return clothingIds.length === 1
    ? { type: "single", clothingId: clothingIds[0], ...options }
    : { type: "batch", clothingIds, ...options };
}

function startView() {
  clearResults();
  $("summary").textContent = "";
  $("job-line").textContent = "";
  $("progress").value = 0;
}

export async function submitJob() {
  if (currentJob) return;  // Try on is disabled while a job runs; this guards a queued click
  const ids = checkedGarments();
  if (!ids.length) {
    show("progress-text", "check at least one garment", true);
    return;
  }
  $("tryon").disabled = true;
  startView();
  show("progress-text", "submitting...");
  let job;
  try {
    job = await api("POST", "/api/jobs", request(ids));
  } catch (error) {
    show("progress-text", errorText(error), true);
    $("tryon").disabled = false;
    return;
  }
  await follow(job.jobId);
}

export async function cancelJob() {
  if (!currentJob) return;
  $("cancel").disabled = true;
  try {
    showStatus(await api("DELETE", jobPath(currentJob)));
  } catch (error) {
    show("progress-text", errorText(error), true);
    $("cancel").disabled = currentJob === null;
  }
}

// A job by its id, finished or not: its results, and its events while it runs.
export function showJob(jobId) {
  if (currentJob) return;
  startView();
  show("progress-text", "loading...");
  follow(jobId);
}

// After a reload: back to the job the address names.
export function resumeFromAddress() {
  const jobId = jobInAddress();
  if (jobId) showJob(jobId);
}
