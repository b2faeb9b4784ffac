// The vton test page: wires the panels (person, garments, try-on job, results) to the page.
import { $ } from "./dom.js";
import { refreshGarments, registerGarment } from "./garments.js";
import { cancelJob, resumeFromAddress, submitJob } from "./job.js";
import { loadJobList } from "./jobs-list.js";
import { loadPerson, registerPerson } from "./person.js";
import { initViewer } from "./results.js";

// The tiny model's random weights make noise: say so when /ready reports it.
async function showModelNotice() {
  try {
    const ready = await (await fetch("/ready")).json();
    $("model-notice").hidden = !ready.tinyModel;
  } catch { /* the notice stays hidden: the server did not say */ }
}

function loadAccount() {
  if (!$("token").value.trim()) return;
  loadPerson();
  refreshGarments();
  loadJobList();
}

$("token").value = new URLSearchParams(location.search).get("token")
  || localStorage.getItem("vton-token") || "";
$("token").addEventListener("change", () => {
  localStorage.setItem("vton-token", $("token").value.trim());
  loadAccount();
});
$("register-person").addEventListener("click", registerPerson);
$("register-garment").addEventListener("click", registerGarment);
$("refresh-garments").addEventListener("click", refreshGarments);
$("tryon").addEventListener("click", submitJob);
$("cancel").addEventListener("click", cancelJob);
initViewer();

showModelNotice();
loadAccount();
if ($("token").value.trim()) resumeFromAddress();
