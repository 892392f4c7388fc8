// hwgan app: the page. Plain JavaScript, no libraries, nothing from outside this computer.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { info: null, hands: [], seed: 0, pageNo: 1, pages: 0, previewTimer: null,
                previewAbort: null, previewUrl: null, job: null, jobTimer: null };

function say(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", !!isError);
}

async function errorText(res) {
  try { const j = await res.json(); return j.error || res.statusText; }
  catch (e) { return res.statusText || "something went wrong"; }
}

// Every change goes through here: JSON or form data, with the header only this page sends.
async function post(url, body, signal) {
  const opts = { method: "POST", headers: { "X-Hwgan-App": "1" }, signal };
  if (body instanceof FormData) { opts.body = body; }
  else { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body || {}); }
  return fetch(url, opts);
}

async function getJSON(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(await errorText(res));
  return res.json();
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url; a.download = name;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// 1. Sheets --------------------------------------------------------------------------------
async function getSheets() {
  say("Making the sheets...");
  const res = await post("/api/sheets", { paper: $("paper").value,
                                          repeats: parseInt($("repeats").value, 10) });
  if (!res.ok) { say("Could not make the sheets: " + await errorText(res), true); return; }
  saveBlob(await res.blob(), "handwriting-sheets.pdf");
  say("The sheets are downloaded. Print them, fill them in, then upload photos below.");
}

// 2. Upload --------------------------------------------------------------------------------
async function upload(files) {
  if (!files || !files.length) return;
  const fd = new FormData();
  for (const f of files) fd.append("files", f, f.name);
  say(`Reading ${files.length} picture(s)... this can take a little while.`);
  const res = await post("/api/uploads", fd);
  if (!res.ok) { say("Upload refused: " + await errorText(res), true); return; }
  const data = await res.json();
  const bad = data.results.filter((r) => r.status !== "ok");
  say(bad.length ? `${bad.length} of ${data.results.length} picture(s) could not be used: see the list.`
                 : `${data.results.length} picture(s) read. Check the letters below.`, bad.length > 0);
  showReview(data.review);
  $("files").value = "";
}

function showUploads(review) {
  const ul = $("upload-list");
  ul.replaceChildren();
  for (const p of review.pages) {
    const li = document.createElement("li");
    li.className = "ok";
    const c = p.counts;
    li.textContent = `Page ${p.page} (${p.file}): sheet found, ${c.ok + c.suspicious} letters read` +
      (c.empty ? `, ${c.empty} boxes empty` : "") +
      (p.warnings && p.warnings.length ? `. Note: ${p.warnings.join("; ")}` : "");
    ul.appendChild(li);
  }
  for (const r of review.refused) {
    const li = document.createElement("li");
    li.className = "refused";
    li.textContent = `${r.file}: not used. ${r.why}`;
    ul.appendChild(li);
  }
}

// 3. Review --------------------------------------------------------------------------------
function showReview(review) {
  showUploads(review);
  const box = $("glyphs");
  box.replaceChildren();
  const byChar = new Map();
  for (const g of review.glyphs) {
    if (!byChar.has(g.char)) byChar.set(g.char, []);
    byChar.get(g.char).push(g);
  }
  for (const [ch, list] of byChar) {
    const row = document.createElement("div");
    row.className = "char-row";
    row.setAttribute("role", "group");
    row.setAttribute("aria-label", `Letter ${ch}`);
    const h = document.createElement("h3");
    h.textContent = ch;
    h.setAttribute("aria-hidden", "true");
    row.appendChild(h);
    for (const g of list) row.appendChild(glyphButton(g));
    box.appendChild(row);
  }
  const pages = review.pages.length;
  $("review-summary").textContent = pages
    ? `${review.usable} letters will be used, from ${pages} page(s).`
    : "No sheets uploaded yet.";
  $("missing").textContent = review.missing.length && pages
    ? `Not found on your sheets yet: ${review.missing.join(" ")}` : "";
}

function glyphButton(g) {
  const words = { ok: "ok", suspicious: "check", empty: "empty" };
  const b = document.createElement("button");
  b.type = "button";
  b.className = "glyph " + g.status;
  const label = document.createElement("span");
  label.textContent = g.excluded && g.image ? "left out" : words[g.status] || g.status;
  if (g.image) {
    const img = document.createElement("img");
    img.src = `/api/glyphs/${g.id}.png`;
    img.alt = "";
    b.appendChild(img);
    b.setAttribute("aria-pressed", g.excluded ? "true" : "false");
    b.setAttribute("aria-label", `${g.char}, ${words[g.status] || g.status}` +
                   (g.reasons && g.reasons.length ? ` (${g.reasons.join(", ")})` : "") +
                   (g.excluded ? ", left out; press to bring back" : ", used; press to leave out"));
    b.dataset.id = g.id;
    b.addEventListener("click", () => toggleGlyph(g.id, !g.excluded));
  } else {
    b.disabled = true;
    b.setAttribute("aria-label", `${g.char}, empty box`);
  }
  b.appendChild(label);
  return b;
}

async function toggleGlyph(id, excluded) {
  const res = await post("/api/glyphs", { id, excluded });
  if (!res.ok) { say(await errorText(res), true); return; }
  showReview(await res.json());
  say(excluded ? "Letter left out." : "Letter brought back.");
  const again = document.querySelector(`.glyph[data-id="${id}"]`);
  if (again) again.focus();
}

async function clearSheets() {
  if (!confirm("Remove all uploaded pages and start again? Your hands are kept.")) return;
  const res = await post("/api/sheets/clear", {});
  if (res.ok) { showReview(await res.json()); say("Uploaded pages removed."); }
}

// 4. Hands ---------------------------------------------------------------------------------
async function loadHands(selectId) {
  const data = await getJSON("/api/hands");
  state.hands = data.hands;
  const ul = $("hands");
  ul.replaceChildren();
  const sel = $("write-hand");
  const keep = selectId || sel.value;
  sel.replaceChildren();
  for (const h of state.hands) {
    const opt = document.createElement("option");
    opt.value = h.id;
    opt.textContent = h.kind === "gallery" ? h.name : `${h.name}`;
    sel.appendChild(opt);
    if (h.kind !== "gallery") ul.appendChild(handItem(h));
  }
  if (!ul.children.length) {
    const li = document.createElement("li");
    li.textContent = "No hands yet.";
    ul.appendChild(li);
  }
  if (keep && state.hands.some((h) => h.id === keep)) sel.value = keep;
  schedulePreview(0);
}

function handItem(h) {
  const li = document.createElement("li");
  const name = document.createElement("span");
  name.className = "hand-name";
  name.textContent = h.name;
  const kind = document.createElement("span");
  kind.textContent = h.kind === "adapted" ? "(closer copy)" : "(quick)";
  const rename = document.createElement("button");
  rename.type = "button"; rename.textContent = "Rename";
  rename.setAttribute("aria-label", `Rename ${h.name}`);
  rename.addEventListener("click", async () => {
    const n = prompt("New name for this hand:", h.name);
    if (n === null) return;
    const res = await post(`/api/hands/${h.id}/rename`, { name: n });
    if (!res.ok) { say(await errorText(res), true); return; }
    say("Renamed."); loadHands();
  });
  const del = document.createElement("button");
  del.type = "button"; del.textContent = "Delete";
  del.setAttribute("aria-label", `Delete ${h.name}`);
  del.addEventListener("click", async () => {
    if (!confirm(`Delete the hand "${h.name}"? This cannot be undone.`)) return;
    const res = await post(`/api/hands/${h.id}/delete`, {});
    if (!res.ok) { say(await errorText(res), true); return; }
    say("Deleted."); loadHands();
  });
  const save = document.createElement("a");
  save.href = `/api/hands/${h.id}/export`;
  save.download = `${h.name.replace(/[^A-Za-z0-9 _-]/g, "_")}.hwhand`;
  save.textContent = "Save to a file";
  save.setAttribute("aria-label", `Save ${h.name} to a file`);
  li.append(name, kind, rename, del, save);
  return li;
}

async function makeHand(method) {
  const name = $("hand-name").value;
  say(method === "fast" ? "Making your hand..." : "Starting...");
  $("make-fast").disabled = true;
  try {
    const res = await post("/api/hands/make", { name, method });
    if (!res.ok) { say(await errorText(res), true); return; }
    const data = await res.json();
    if (data.hand) {
      await loadHands(data.hand.id);
      say(`Your hand "${data.hand.name}" is ready. Write a letter below.`);
    } else if (data.job) {
      showJob(data.job); pollJob();
    }
  } finally { $("make-fast").disabled = false; }
}

function fmtTime(s) {
  if (s === null || s === undefined) return "working out the time left";
  if (s < 60) return `about ${Math.max(1, Math.round(s))} seconds left`;
  return `about ${Math.round(s / 60)} minute(s) left`;
}

function showJob(job) {
  state.job = job;
  const box = $("job");
  if (!job) { box.hidden = true; return; }
  box.hidden = false;
  const pct = Math.round((job.progress || 0) * 100);
  $("job-progress").value = pct;
  $("job-label").textContent = `Making "${job.name}"`;
  const running = job.status === "running" || job.status === "cancelling";
  $("job-cancel").hidden = !running;
  $("make-better").disabled = running;
  if (job.status === "running") $("job-text").textContent = `${pct}% done, ${fmtTime(job.seconds_left)} (${job.message}). You can keep using the page.`;
  else if (job.status === "cancelling") $("job-text").textContent = "Stopping...";
  else if (job.status === "done") $("job-text").textContent = `Done: "${job.name}" is ready.`;
  else if (job.status === "cancelled") $("job-text").textContent = "Cancelled. Your other hands are kept.";
  else if (job.status === "failed") $("job-text").textContent = `This did not work: ${job.error}. Your other hands are kept.`;
}

async function pollJob() {
  clearTimeout(state.jobTimer);
  const data = await getJSON("/api/job");
  const before = state.job && state.job.status;
  showJob(data.job);
  if (data.job && (data.job.status === "running" || data.job.status === "cancelling")) {
    state.jobTimer = setTimeout(pollJob, 1000);
  } else if (data.job && before && before !== data.job.status) {
    if (data.job.status === "done") { await loadHands(data.job.hand && data.job.hand.id);
                                      say(`Your hand "${data.job.name}" is ready.`); }
    else if (data.job.status === "failed") say("Making the hand did not work: " + data.job.error, true);
  }
}

async function cancelJob() {
  if (!state.job) return;
  const res = await post(`/api/job/${state.job.id}/cancel`, {});
  if (!res.ok) say(await errorText(res), true);
  pollJob();
}

function dropArea(id, take) {
  // A large labelled target: a click opens the file chooser (its label), files can be dropped.
  const area = $(id);
  area.addEventListener("dragover", (e) => { e.preventDefault(); area.classList.add("over"); });
  area.addEventListener("dragleave", () => area.classList.remove("over"));
  area.addEventListener("drop", (e) => { e.preventDefault(); area.classList.remove("over");
                                         take(e.dataTransfer.files); });
}

async function importHand(file) {
  if (!file) return;
  const fd = new FormData();
  fd.append("file", file, file.name);
  const res = await post("/api/hands/import", fd);
  $("import-file").value = "";
  if (!res.ok) { say("Could not bring in the hand: " + await errorText(res), true); return; }
  const data = await res.json();
  say(`Brought in "${data.hand.name}".`);
  loadHands(data.hand.id);
}

// 5. Write ---------------------------------------------------------------------------------
function writeBody(extra) {
  return Object.assign({ text: $("text").value, hand: $("write-hand").value, page: $("page").value,
                         ink: $("ink").value, line_spacing: parseFloat($("spacing").value),
                         seed: state.seed, missing: $("missing-mode").value }, extra);
}

function schedulePreview(delay) {
  clearTimeout(state.previewTimer);
  state.previewTimer = setTimeout(preview, delay === undefined ? 500 : delay);
}

async function preview() {
  if (!$("write-hand").value || !$("text").value.trim()) {
    $("preview").hidden = true;
    $("preview-note").textContent = $("write-hand").value ? "Type your letter to see it here."
      : "Make a hand first (step 4).";
    return;
  }
  if (state.previewAbort) state.previewAbort.abort();
  const ctl = new AbortController();
  state.previewAbort = ctl;
  let res;
  try {
    res = await post("/api/write", writeBody({ preview: true, format: "png", page_no: state.pageNo }),
                     ctl.signal);
  } catch (e) { return; }  // replaced by a newer preview
  if (res.status === 503) { schedulePreview(700); return; }
  if (!res.ok) {
    const msg = await errorText(res);
    if (state.pageNo > 1 && msg.startsWith("page ")) { state.pageNo = 1; schedulePreview(0); return; }
    $("preview-note").textContent = "Cannot show this letter: " + msg;
    return;
  }
  state.pages = parseInt(res.headers.get("X-Hwgan-Pages") || "1", 10);
  const glyphs = res.headers.get("X-Hwgan-Glyphs");
  const blob = await res.blob();
  if (ctl.signal.aborted) return;
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = URL.createObjectURL(blob);
  const img = $("preview");
  img.src = state.previewUrl;
  img.hidden = false;
  img.alt = `Page ${state.pageNo} of ${state.pages} of your letter, in the chosen hand`;
  img.dataset.glyphs = glyphs;
  img.dataset.version = String((parseInt(img.dataset.version || "0", 10)) + 1);
  $("preview-note").textContent = `Preview: page ${state.pageNo} of ${state.pages}, ${glyphs} letters.`;
  $("page-of").textContent = `Page ${state.pageNo} of ${state.pages}`;
  $("prev-page").disabled = state.pageNo <= 1;
  $("next-page").disabled = state.pageNo >= state.pages;
}

// allPages: PNG / SVG of every page (the server sends a .zip of page-1.png, page-2.png, ...
// for a letter of several pages, the page's own file for a letter of one).
async function download(format, allPages) {
  if (!$("text").value.trim()) { say("Type your letter first.", true); return; }
  say(allPages ? "Preparing every page... a long letter takes a little while."
               : "Preparing the download...");
  let res;
  for (let i = 0; i < 20; i++) {
    res = await post("/api/write", writeBody({ format, page_no: state.pageNo,
                                               all_pages: !!allPages }));
    if (res.status !== 503) break;
    await new Promise((r) => setTimeout(r, 700));
  }
  if (!res.ok) { say("Could not make the file: " + await errorText(res), true); return; }
  const pages = parseInt(res.headers.get("X-Hwgan-Pages") || "1", 10);
  const zipped = (res.headers.get("Content-Type") || "").startsWith("application/zip");
  const name = format === "pdf" ? "letter.pdf"
    : zipped ? `letter-${format}.zip`
    : allPages ? `letter.${format}` : `letter-page-${state.pageNo}.${format}`;
  saveBlob(await res.blob(), name);
  say(zipped ? `Downloaded ${name}: ${pages} pages, page-1.${format} to page-${pages}.${format}.`
             : `Downloaded ${name}.`);
}

// Start -------------------------------------------------------------------------------------
async function start() {
  state.info = await getJSON("/api/info");
  for (const [name, hex] of Object.entries(state.info.inks)) {
    const o = document.createElement("option");
    o.value = name; o.textContent = name.replace("-", " ");
    $("ink").appendChild(o);
  }
  for (const [mode, words] of Object.entries(state.info.missing)) {
    const o = document.createElement("option");
    o.value = mode; o.textContent = words;
    $("missing-mode").appendChild(o);
  }
  $("missing-mode").value = "box";
  if (!state.info.fast) $("make-fast").disabled = true;
  if (!state.info.better) {
    $("make-better").disabled = true;
    $("better-note").textContent = "The closer copy needs a base model; it is not set up here.";
  }
  $("get-sheets").addEventListener("click", getSheets);
  $("files").addEventListener("change", (e) => upload(e.target.files));
  dropArea("drop", (files) => upload(files));
  dropArea("import-drop", (files) => { if (files.length) importHand(files[0]); });
  $("clear-sheets").addEventListener("click", clearSheets);
  $("make-fast").addEventListener("click", () => makeHand("fast"));
  $("make-better").addEventListener("click", () => makeHand("better"));
  $("job-cancel").addEventListener("click", cancelJob);
  $("import-file").addEventListener("change", (e) => importHand(e.target.files[0]));
  $("text").addEventListener("input", () => schedulePreview());
  for (const id of ["write-hand", "page", "ink", "spacing", "missing-mode"])
    $(id).addEventListener("change", () => { state.pageNo = 1; schedulePreview(0); });
  $("another").addEventListener("click", () => {
    state.seed += 1; $("version").textContent = `Version ${state.seed + 1}`; schedulePreview(0); });
  $("prev-page").addEventListener("click", () => { state.pageNo -= 1; schedulePreview(0); });
  $("next-page").addEventListener("click", () => { state.pageNo += 1; schedulePreview(0); });
  $("dl-pdf").addEventListener("click", () => download("pdf"));
  $("dl-png").addEventListener("click", () => download("png"));
  $("dl-svg").addEventListener("click", () => download("svg"));
  $("dl-png-all").addEventListener("click", () => download("png", true));
  $("dl-svg-all").addEventListener("click", () => download("svg", true));
  showReview(await getJSON("/api/review"));
  await loadHands();
  await pollJob();
  document.body.dataset.ready = "1";
}

start().catch((e) => say("The page could not start: " + e.message, true));
