// The caller's recent jobs (GET /api/jobs), each one a button that shows it; hidden where the
// server has no job list.
import { api } from "./api.js";
import { $ } from "./dom.js";
import { jobRunning, showJob } from "./job.js";

const SHOWN = 10;

function entry(job) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "show-job";
  button.dataset.jobId = job.jobId;
  button.textContent = "Show";
  button.disabled = jobRunning();
  button.setAttribute("aria-label", `show job ${job.jobId}`);
  button.addEventListener("click", () => showJob(job.jobId));
  const id = document.createElement("code");
  id.textContent = job.jobId;
  const created = new Date(job.createdAt * 1000).toLocaleTimeString();
  item.append(button, " ", id, ` ${job.type}, ${job.state}, created ${created}`);
  return item;
}

export async function loadJobList() {
  try {
    const list = await api("GET", `/api/jobs?limit=${SHOWN}`);
    $("jobs").replaceChildren(...list.jobs.map(entry));
    if (!list.jobs.length) $("jobs").textContent = "No jobs yet.";
    $("jobs-section").hidden = false;
  } catch {
    $("jobs-section").hidden = true;  // no list here (an older server), or not signed in
  }
}

// While a job runs its Show buttons wait; when it ends the list is read again.
document.addEventListener("vton:job", (event) => {
  for (const button of document.querySelectorAll(".show-job")) button.disabled = event.detail.running;
  if (!event.detail.running) loadJobList();
});
