// The upload page's script, served as /page.js (the page's Content-Security-Policy runs no inline script).
"use strict";
const INFO = JSON.parse(document.getElementById("info").textContent);
const $ = id => document.getElementById(id);
async function send(file) {
  $("error").textContent = ""; $("result").replaceChildren();
  $("preview").src = URL.createObjectURL(file);
  const parts = [];
  if (INFO.predict) {
    const form = new FormData(); form.append("file", file);
    const r = await fetch("/predict", {method: "POST", body: form}); const body = await r.json();
    if (!r.ok) { $("error").textContent = body.error || JSON.stringify(body); return; }
    const t = document.createElement("table"); t.id = "prediction";
    for (const {class: c, probability: p} of body.predictions[0].top) {
      const row = t.insertRow(); row.insertCell().textContent = c;
      const bar = document.createElement("span"); bar.className = "bar"; bar.style.width = Math.round(300 * p) + "px";
      const cell = row.insertCell(); cell.append(bar, (100 * p).toFixed(1) + " %");
    }
    const h = document.createElement("h2"); h.textContent = "Classes"; parts.push(h, t);
    const g = new FormData(); g.append("file", file);
    const rc = await fetch("/gradcam", {method: "POST", body: g}); const cam = await rc.json();
    if (rc.ok) { const hc = document.createElement("h2"); hc.textContent = `Where the model looked (Grad-CAM of ${cam.class})`;
      const im = document.createElement("img"); im.id = "gradcam"; im.src = cam.overlay; im.alt = "Grad-CAM"; parts.push(hc, im); }
  }
  if (INFO.similar) {
    const form = new FormData(); form.append("file", file);
    const r = await fetch("/similar?k=8", {method: "POST", body: form}); const body = await r.json();
    if (!r.ok) { $("error").textContent = body.error || JSON.stringify(body); return; }
    const g = document.createElement("div"); g.className = "grid"; g.id = "neighbours";
    for (const n of body.neighbours) { const f = document.createElement("figure"); const im = document.createElement("img");
      im.src = n.image; im.alt = n.path; const c = document.createElement("figcaption");
      c.textContent = `#${n.rank} ${n.path} ${n.similarity.toFixed(3)}`; f.append(im, c); g.append(f); }
    const h = document.createElement("h2"); h.textContent = "Most similar images"; parts.push(h, g);
  }
  $("result").replaceChildren(...parts); document.body.dataset.done = "1";
}
$("file").onchange = e => { if (e.target.files[0]) send(e.target.files[0]); };
const drop = $("drop");
drop.ondragover = e => { e.preventDefault(); drop.classList.add("over"); };
drop.ondragleave = () => drop.classList.remove("over");
drop.ondrop = e => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]); };
