// The page of `mnistgan serve`: controls -> /api/sample and /api/walk, /api/model beside them.
// Everything comes from this server; images are fetched as blobs so an error's JSON message can
// be shown instead of a broken image.
"use strict";

const $ = (id) => document.getElementById(id);
const latest = { grid: 0, walk: 0 };  // only the newest answer of each kind is drawn
let limits = { n: 256, seed: 4294967295, steps: 64 };

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null) q.set(k, v);
  return q.toString();
}

async function fetchImage(url, kind) {
  const token = ++latest[kind];
  const t0 = performance.now();
  const res = await fetch(url);
  if (token !== latest[kind]) return null;
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try { message = (await res.json()).error || message; } catch (e) { /* not JSON */ }
    showError(message);
    return null;
  }
  const blob = await res.blob();
  if (token !== latest[kind]) return null;
  showError("");
  return { src: URL.createObjectURL(blob), ms: performance.now() - t0 };
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function swap(img, src) {
  const old = img.src;
  img.src = src;
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
}

async function drawGrid() {
  const digit = $("digit").value, n = $("count").value, seed = $("seed").value;
  const url = "/api/sample?" + query({ digit, n, seed });
  const got = await fetchImage(url, "grid");
  if (!got) return;
  const img = $("grid");
  img.onload = () => {
    img.dataset.draws = String(Number(img.dataset.draws || 0) + 1);
    img.dataset.seed = seed;
  };
  swap(img, got.src);
  img.style.width = `${Math.min(640, 30 * Math.ceil(Math.sqrt(n)) * 2.2)}px`;
  $("grid-status").textContent =
    `${n} images, ${digit === "" ? "any digit" : "digit " + digit}, seed ${seed}: ${Math.round(got.ms)} ms`;
  const a = $("download");
  a.href = url;
  a.download = `mnistgan-${digit === "" ? "any" : digit}-n${n}-seed${seed}.png`;
}

async function drawWalk() {
  const url = "/api/walk?" + query({
    digit: $("digit").value, seed_a: $("seed-a").value, seed_b: $("seed-b").value,
    steps: $("steps").value,
  });
  const got = await fetchImage(url, "walk");
  if (got) swap($("walk"), got.src);
}

function randomSeed() {
  return Math.floor(Math.random() * 2 ** 31);
}

function generate(event) {
  event.preventDefault();
  const seed = randomSeed();
  $("seed").value = seed;
  $("seed-a").value = seed;
  $("seed-b").value = randomSeed();
  drawGrid();
  drawWalk();
}

function debounce(fn, ms) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

function fact(name, value) {
  const dt = document.createElement("dt"), dd = document.createElement("dd");
  dt.textContent = name;
  dd.textContent = value;
  $("facts").append(dt, dd);
}

function showModel(m) {
  $("model-name").textContent = m.name;
  document.title = `mnistgan: ${m.name}`;
  fact("name", m.name);
  fact("source", m.source);
  fact("preset", m.preset);
  fact("kind", m.conditional ? `class-conditional, ${m.num_classes} digits` : "unconditional");
  fact("parameters", m.parameters.toLocaleString("en"));
  fact("latent", `z of ${m.z_dim}`);
  if (m.progress) fact("trained", `${m.progress.step.toLocaleString("en")} steps, epoch ${m.progress.epoch}`);
  if (m.command) fact("command", m.command);
  const body = $("metrics").tBodies[0];
  for (const row of m.metrics) {
    const tr = body.insertRow();
    for (const v of [row.label, row.value, row.real]) tr.insertCell().textContent = v;
    tr.title = row.note;
  }
  $("metrics").hidden = m.metrics.length === 0;
  $("no-metrics").hidden = m.metrics.length !== 0;
  if (m.metrics_n) $("metrics").caption = Object.assign(document.createElement("caption"),
    { textContent: `on ${m.metrics_n.toLocaleString("en")} samples` });
  $("config").textContent = JSON.stringify(m.config, null, 2);
  if (!m.conditional) { $("digit").value = ""; $("digit").disabled = true; }
  limits = m.limits;
  $("count").max = limits.n;
  for (const id of ["seed", "seed-a", "seed-b"]) $(id).max = limits.seed;
  $("steps").max = limits.steps;
}

async function showApi() {
  const spec = await (await fetch("/openapi.json")).json();
  const body = $("api-table").tBodies[0];
  for (const [path, methods] of Object.entries(spec.paths)) {
    const op = methods.get;
    const params = (op.parameters || []).map((p) => {
      const s = p.schema.anyOf ? p.schema.anyOf[0] : p.schema;
      const range = s.minimum !== undefined ? ` ${s.minimum}-${s.maximum}` : "";
      return `${p.name}${range}${p.schema.default !== undefined ? " (default " + p.schema.default + ")" : ""}`;
    });
    const tr = body.insertRow();
    const code = document.createElement("code");
    code.textContent = `GET ${path}`;
    tr.insertCell().append(code, document.createElement("br"), op.summary);
    tr.insertCell().textContent = params.join(", ") || "none";
  }
}

async function start() {
  $("controls").addEventListener("submit", generate);
  $("digit").addEventListener("change", () => { drawGrid(); drawWalk(); });
  const redraw = debounce(drawGrid, 150), rewalk = debounce(drawWalk, 150);
  for (const id of ["seed", "count"]) $(id).addEventListener("input", redraw);
  for (const id of ["seed-a", "seed-b", "steps"]) $(id).addEventListener("input", rewalk);
  try {
    const res = await fetch("/api/model");
    showModel(await res.json());
  } catch (e) {
    showError(`cannot read /api/model: ${e}`);
  }
  drawGrid();
  drawWalk();
  showApi();
}

start();
