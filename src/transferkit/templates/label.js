// The labelling page: shows one image at a time, sends each answer before showing the next, keys 1-9/Enter/s/z.
// Text from the server goes into textContent only, never into HTML.
"use strict";
const state = {queue: [], current: null, classes: [], busy: false};
const $ = (id) => document.getElementById(id);

async function call(method, url, body) {
  const options = {method, headers: {}};
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  const data = await response.json().catch(() => ({error: "answer " + response.status}));
  if (!response.ok) throw new Error(data.error || ("answer " + response.status));
  return data;
}

function showError(message) { $("error").textContent = message || ""; }

async function refill() {
  if (state.queue.length >= 3) return;
  const taken = state.queue.map((i) => i.index).concat(state.current ? [state.current.index] : []);
  const data = await call("GET", "/api/next?exclude=" + taken.join(","));
  for (const item of data.items) if (!taken.includes(item.index)) state.queue.push(item);
}

function drawClasses() {
  const box = $("classes");
  box.replaceChildren();
  state.classes.forEach((name, i) => {
    const b = document.createElement("button");
    b.textContent = (i < 9 ? (i + 1) + " " : "") + name;
    b.dataset.label = name;
    if (state.current && state.current.suggestion === name) b.className = "suggested";
    b.addEventListener("click", () => answer(name));
    box.appendChild(b);
  });
}

function show() {
  const item = state.current;
  if (!item) {
    $("image").removeAttribute("src");
    $("path").textContent = "";
    $("suggestion").textContent = "";
    $("done").textContent = "Nothing left to ask: every image of the pool is labelled or skipped.";
    drawClasses();
    return;
  }
  $("done").textContent = "";
  $("image").src = "/image/" + item.index;
  $("path").textContent = item.path;
  $("suggestion").textContent = item.suggestion
    ? "The model suggests " + item.suggestion + " (" + Math.round(100 * item.confidence) + " %) — Enter accepts it."
    : "No suggestion yet: the model needs labels of two classes.";
  drawClasses();
}

function drawStatus(s) {
  state.classes = s.classes;
  const table = $("counts");
  table.replaceChildren();
  for (const name of s.classes) {
    const row = table.insertRow();
    row.insertCell().textContent = name;
    const n = row.insertCell();
    n.textContent = s.counts[name];
    n.style.textAlign = "right";
  }
  const acc = s.cv_accuracy === null ? "not yet (2 labels per class needed)" : (100 * s.cv_accuracy).toFixed(1) + " %";
  $("summary").textContent = s.labelled + " labelled, " + s.skipped + " skipped, " + s.unanswered +
    " to go. Cross-validated accuracy: " + acc + ". Saved to " + s.csv + ".";
  drawCurve(s.curve.filter((p) => p.cv_accuracy !== null));
}

function drawCurve(points) {
  const svg = $("curve");
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.appendChild(el);
    return el;
  };
  const left = 40, right = 510, top = 10, bottom = 190;
  add("line", {x1: left, y1: bottom, x2: right, y2: bottom, stroke: "#999"});
  add("line", {x1: left, y1: top, x2: left, y2: bottom, stroke: "#999"});
  for (const v of [0, 0.5, 1]) add("text", {x: 4, y: bottom - v * (bottom - top) + 4, "font-size": 11}, (100 * v) + "%");
  if (!points.length) {
    add("text", {x: 150, y: 100, "font-size": 12, fill: "#777"}, "appears once two classes have 2 labels each");
    return;
  }
  const most = Math.max(...points.map((p) => p.labels), 10);
  add("text", {x: right - 60, y: 212, "font-size": 11}, most + " labels");
  const xy = (p) => [left + (right - left) * p.labels / most, bottom - (bottom - top) * p.cv_accuracy];
  add("polyline", {points: points.map((p) => xy(p).join(",")).join(" "), fill: "none", stroke: "#1f77b4",
    "stroke-width": 2});
  for (const p of points) {
    const [x, y] = xy(p);
    add("circle", {cx: x, cy: y, r: 3, fill: "#1f77b4"});
  }
}

async function next() {
  state.current = state.queue.shift() || null;
  if (!state.current) {
    await refill();
    state.current = state.queue.shift() || null;
  }
  if (state.current) state.current = await call("GET", "/api/item/" + state.current.index);  // today's suggestion
  show();
  refill().catch((e) => showError(e.message));
}

async function act(work) {
  if (state.busy) return;
  state.busy = true;
  showError("");
  try { await work(); } catch (e) { showError(e.message); } finally { state.busy = false; }
}

function answer(label) {
  return act(async () => {
    if (!state.current) return;
    drawStatus(await call("POST", "/api/answer", {index: state.current.index, label}));
    await next();
  });
}

function skip() {
  return act(async () => {
    if (!state.current) return;
    drawStatus(await call("POST", "/api/skip", {index: state.current.index}));
    await next();
  });
}

function undo() {
  return act(async () => {
    const data = await call("POST", "/api/undo");
    drawStatus(data.status);
    if (data.item) {
      if (state.current) state.queue.unshift(state.current);
      state.queue = state.queue.filter((i) => i.index !== data.item.index);
      state.current = data.item;
      show();
    }
  });
}

function addClass() {
  const name = $("newclass").value.trim();
  if (!name) return;
  return act(async () => {
    drawStatus(await call("POST", "/api/class", {name}));
    $("newclass").value = "";
    drawClasses();
  });
}

document.addEventListener("keydown", (e) => {
  if (e.target && e.target.tagName === "INPUT") {
    if (e.key === "Enter") addClass();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (/^[1-9]$/.test(e.key)) {
    const name = state.classes[Number(e.key) - 1];
    if (name !== undefined) answer(name);
  } else if (e.key === "Enter") {
    if (state.current && state.current.suggestion) answer(state.current.suggestion);
  } else if (e.key === "s") {
    skip();
  } else if (e.key === "z") {
    undo();
  } else {
    return;
  }
  e.preventDefault();
});
$("addclass").addEventListener("click", addClass);

act(async () => {
  drawStatus(await call("GET", "/api/status"));
  await next();
  setInterval(() => call("GET", "/api/status").then(drawStatus).catch(() => {}), 3000);
});
