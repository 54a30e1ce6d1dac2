// The gearjobs dashboard: a list of jobs, a form to start one, and a page per job that follows
// its output live through Server-Sent Events, resuming after a dropped connection with
// Last-Event-ID (so no line is lost or shown twice). No build step, no CDN.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const state = { token: sessionStorage.getItem("gearjobs-token") || "", timer: null, abort: null };

function headers(extra = {}) {
  const all = { ...extra };
  if (state.token) all["Authorization"] = "Bearer " + state.token;
  return all;
}

async function api(path, options = {}) {
  return fetch(path, { ...options, headers: headers(options.headers || {}) });
}

function newId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "";
}

function took(job) {
  if (!job.started_at || !job.finished_at) return "";
  return (job.finished_at - job.started_at).toFixed(2) + " s";
}

async function refreshHeader() {
  try {
    const stats = await (await api("/stats")).json();
    $("#node").textContent = "node " + stats.node;
    $("#queues").innerHTML = Object.entries(stats.queues)
      .map(([name, q]) => `<span class="gauge">${name}: ${q.running}/${q.concurrent} running, ` +
        `${q.waiting}/${q.capacity} waiting</span>`).join(" · ");
  } catch (error) { /* the next refresh tries again */ }
}

async function showList() {
  const main = $("#main");
  main.replaceChildren($("#list-view").content.cloneNode(true));
  $("#request-id").value = newId();
  $("#new-id").onclick = () => { $("#request-id").value = newId(); };
  const spec = await (await api("/openapi.json")).json();
  const names = Object.keys(spec.paths)
    .filter((p) => p.startsWith("/jobs/") && !p.includes("{") && spec.paths[p].post)
    .map((p) => p.slice(6));
  $("#job-name").innerHTML = names.map((n) => `<option>${n}</option>`).join("");
  $("#start-form").onsubmit = startJob;
  $("#filter-state").onchange = refreshList;
  $("#filter-name").oninput = refreshList;
  await refreshList();
  state.timer = setInterval(refreshList, 2000);
}

async function refreshList() {
  const query = new URLSearchParams({ limit: "50" });
  if ($("#filter-state")?.value) query.set("state", $("#filter-state").value);
  if ($("#filter-name")?.value) query.set("name", $("#filter-name").value);
  const answer = await api("/jobs?" + query);
  if (!answer.ok) return;
  const { jobs } = await answer.json();
  const body = $("#jobs tbody");
  if (!body) return;
  body.innerHTML = jobs.map((job) => `<tr>
      <td><a href="#/job/${job.id}">${job.id}</a></td><td>${job.name}</td>
      <td class="state-${job.state}">${job.state}</td><td>${job.status ?? ""}</td>
      <td>${job.user}</td><td>${when(job.created_at)}</td><td>${took(job)}</td></tr>`).join("");
}

async function startJob(event) {
  event.preventDefault();
  $("#start-error").textContent = "";
  let params;
  try { params = JSON.parse($("#job-params").value || "{}"); } catch (error) {
    $("#start-error").textContent = "parameters: " + error.message;
    return;
  }
  const id = $("#request-id").value.trim();
  const name = $("#job-name").value;
  // Do not wait for the answer: the job page follows it.
  const started = api("/jobs/" + encodeURIComponent(name), {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Request-Id": id, "Accept": "application/json" },
    body: JSON.stringify(params),
  });
  const first = await Promise.race([started, new Promise((r) => setTimeout(r, 300))]);
  if (first && first.status >= 400) {
    const body = await first.json();
    $("#start-error").textContent = `${first.status}: ${body.message}`;
    return;
  }
  location.hash = "#/job/" + id;
}

async function showJob(id) {
  const main = $("#main");
  main.replaceChildren($("#job-view").content.cloneNode(true));
  $("#job-id").textContent = id;
  const record = await api("/jobs/" + id);
  if (record.ok) {
    const job = await record.json();
    $("#job-name-title").textContent = job.name;
    $("#state").textContent = job.state;
  }
  follow(id);
}

// Follows /jobs/{id}/output as Server-Sent Events through fetch (so the token header goes
// along), and resumes after a drop from the last event seen.
async function follow(id) {
  let last = -1;
  let done = false;
  const controller = new AbortController();
  state.abort = controller;
  while (!done && !controller.signal.aborted) {
    try {
      const extra = { Accept: "text/event-stream" };
      if (last >= 0) extra["Last-Event-ID"] = String(last);
      const answer = await fetch("/jobs/" + id + "/output", { headers: headers(extra), signal: controller.signal });
      if (answer.status === 204) { $("#answer").textContent = "ran to completion (no longer kept)"; break; }
      if (!answer.ok) { $("#failure").textContent = (await answer.json()).message; break; }
      $("#stream").textContent = "live";
      const reader = answer.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done: ended } = await reader.read();
        if (ended) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = parseEvent(block);
          if (event.id <= last) continue;  // never show an entry twice
          last = event.id;
          if (show(event)) done = true;
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    if (!done) {
      $("#stream").textContent = "reconnecting";
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  $("#stream").textContent = "ended";
  const record = await api("/jobs/" + id);
  if (record.ok) $("#state").textContent = (await record.json()).state;
}

function parseEvent(block) {
  const event = { id: -1, type: "message", data: [] };
  for (const line of block.split("\n")) {
    const at = line.indexOf(": ");
    const field = at < 0 ? line : line.slice(0, at);
    const value = at < 0 ? "" : line.slice(at + 2);
    if (field === "id") event.id = Number(value);
    else if (field === "event") event.type = value;
    else if (field === "data") event.data.push(value);
  }
  event.data = event.data.join("\n");
  return event;
}

// Shows one journal entry; true when it is the last.
function show(event) {
  if (event.type === "success") {
    const success = JSON.parse(event.data);
    $("#answer").textContent = success.kind + (success.body === "none" ? "" : ", " + success.body);
    if (success.body === "data") {
      $("#data").hidden = false;
      $("#data").textContent = JSON.stringify(success.data, null, 2);
    }
    if (success.body === "text") $("#log").hidden = false;
    if (success.body === "events") $("#events").hidden = false;
    $("#state").textContent = "running";
    return success.body === "none" || success.body === "data";
  }
  if (event.type === "text") {
    const log = $("#log");
    log.textContent += event.data;
    log.scrollTop = log.scrollHeight;
    return false;
  }
  if (event.type === "event") {
    const value = JSON.parse(event.data);
    const row = document.createElement("tr");
    row.dataset.entry = String(event.id);
    row.innerHTML = `<td>${event.id}</td><td><code></code></td>`;
    row.querySelector("code").textContent = event.data;
    $("#events tbody").appendChild(row);
    if (typeof value === "object" && value && typeof value.progress === "number" && typeof value.total === "number") {
      const bar = $("#progress");
      bar.hidden = false;
      bar.max = value.total;
      bar.value = value.progress;
      $("#progress-text").textContent = `${value.progress} / ${value.total}`;
    }
    return false;
  }
  if (event.type === "failure") {
    const failure = JSON.parse(event.data);
    $("#failure").textContent = `${failure.code}: ${failure.message}`;
    return true;
  }
  return event.type === "end";
}

function route() {
  clearInterval(state.timer);
  if (state.abort) state.abort.abort();
  const match = location.hash.match(/^#\/job\/([A-Za-z0-9_=-]+)$/);
  if (match) showJob(match[1]); else showList();
}

$("#token").value = state.token;
$("#token").onchange = () => {
  state.token = $("#token").value.trim();
  sessionStorage.setItem("gearjobs-token", state.token);
  route();
};
window.addEventListener("hashchange", route);
refreshHeader();
setInterval(refreshHeader, 2000);
route();
