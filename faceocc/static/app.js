// faceocc's web page: a photo (or webcam frames, a few per second) to POST /v1/predict, the faces drawn on a
// canvas in each class's colour (GET /v1/models), the head-pose axes when asked. Served by the app; no CDN.
"use strict";

const view = document.getElementById("view");
const ctx = view.getContext("2d");
const statusLine = document.getElementById("status");
const taskSelect = document.getElementById("task");
const fileInput = document.getElementById("file");
const poseBox = document.getElementById("pose");
const camera = document.getElementById("camera");
const table = document.getElementById("faces");
const FRAME_INTERVAL_MS = 400;  // webcam frames sent at about 2.5 per second
let colours = {};
let cameraTimer = null;

function say(text, isError = false) {
  statusLine.textContent = text;
  statusLine.className = isError ? "error" : "";
}

function rgb(c) { return `rgb(${c[0]}, ${c[1]}, ${c[2]})`; }

async function loadModels() {
  const response = await fetch("/v1/models");
  const models = await response.json();
  for (const m of models) {
    const option = document.createElement("option");
    option.value = m.task;
    option.textContent = `${m.task} (${m.name})`;
    taskSelect.appendChild(option);
    colours[m.task] = m.colours;
  }
  say(`Ready: ${models.map((m) => m.task).join(", ")}.`);
}

function drawResult(source, result) {
  view.width = source.naturalWidth || source.videoWidth || source.width;
  view.height = source.naturalHeight || source.videoHeight || source.height;
  ctx.drawImage(source, 0, 0, view.width, view.height);
  const palette = colours[result.task] || {};
  const line = Math.max(2, Math.round(Math.max(view.width, view.height) / 400));
  ctx.lineWidth = line;
  ctx.font = `${Math.max(12, Math.round(view.width / 60))}px system-ui, sans-serif`;
  const body = table.querySelector("tbody");
  body.replaceChildren();
  result.faces.forEach((face, i) => {
    if (!face.label || !face.box) return;
    const [x1, y1, x2, y2] = face.box;
    const colour = rgb(palette[face.label] || [230, 60, 60]);
    ctx.strokeStyle = colour;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = `${face.label} ${face.scores[face.label].toFixed(2)}`;
    const h = parseInt(ctx.font, 10) + 6;
    const w = ctx.measureText(text).width + 8;
    ctx.fillStyle = colour;
    ctx.fillRect(x1, Math.max(0, y1 - h), w, h);
    ctx.fillStyle = "white";
    ctx.fillText(text, x1 + 4, Math.max(h - 5, y1 - 5));
    if (face.pose && face.pose.axes) {
      const axisColours = { x: "red", y: "lime", z: "blue" };
      for (const [name, [a, b]] of Object.entries(face.pose.axes)) {
        ctx.strokeStyle = axisColours[name] || "black";
        ctx.beginPath();
        ctx.moveTo(a[0], a[1]);
        ctx.lineTo(b[0], b[1]);
        ctx.stroke();
      }
    }
    const row = body.insertRow();
    const pose = face.pose ? `yaw ${face.pose.yaw.toFixed(0)}°, pitch ${face.pose.pitch.toFixed(0)}°` : "";
    const swatch = `<span class="swatch" style="background:${colour}"></span>`;
    row.innerHTML = `<td>${i + 1}</td><td>${swatch}${face.label}</td>` +
      `<td>${face.scores[face.label].toFixed(3)}</td><td>${face.box.map((v) => Math.round(v)).join(", ")}</td>` +
      `<td>${pose}</td>`;
  });
  table.hidden = body.rows.length === 0;
  const found = result.faces.filter((f) => f.label).length;
  const reason = found ? "" : ` (${result.faces[0] && result.faces[0].reason || "no face"})`;
  say(`${found} face${found === 1 ? "" : "s"}${reason}; ${result.ms} ms on the server.`);
  view.dataset.faces = String(found);
  view.dataset.labels = result.faces.filter((f) => f.label).map((f) => f.label).join(" ");
}

// `wanted`: whether the answer is still wanted when it comes (a webcam frame's is not once the webcam stopped)
async function classify(blob, source, wanted = () => true) {
  const body = new FormData();
  body.append("file", blob, "upload");
  const query = new URLSearchParams({ task: taskSelect.value, pose: poseBox.checked ? "true" : "false" });
  const response = await fetch(`/v1/predict?${query}`, { method: "POST", body });
  const result = await response.json();
  if (!wanted()) return;
  if (!response.ok) {
    say(`${response.status}: ${result.error || response.statusText}`, true);
    view.dataset.error = String(response.status);
    return;
  }
  drawResult(source, result);
}

document.getElementById("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = fileInput.files[0];
  if (!file) { say("Choose a photo first.", true); return; }
  const url = URL.createObjectURL(file);
  const image = new Image();
  image.onload = () => classify(file, image).finally(() => URL.revokeObjectURL(url));
  image.onerror = () => { say(`${file.name}: the browser cannot show it; sending it anyway.`); classify(file, view); };
  image.src = url;
});

document.getElementById("webcam").addEventListener("click", async () => {
  if (cameraTimer) {
    clearInterval(cameraTimer);
    cameraTimer = null;
    camera.srcObject.getTracks().forEach((t) => t.stop());
    say("Webcam stopped.");
    return;
  }
  try {
    camera.srcObject = await navigator.mediaDevices.getUserMedia({ video: true });
  } catch (err) {
    say(`No webcam: ${err.message}`, true);
    return;
  }
  const grab = document.createElement("canvas");
  let busy = false;
  const timer = setInterval(() => {
    if (busy || !camera.videoWidth) return;  // one frame in flight at a time: the server's queue stays short
    busy = true;
    grab.width = camera.videoWidth;
    grab.height = camera.videoHeight;
    grab.getContext("2d").drawImage(camera, 0, 0);
    // a frame still in flight when the webcam stops must not write over "Webcam stopped."
    grab.toBlob((blob) => classify(blob, grab, () => cameraTimer === timer).finally(() => { busy = false; }),
      "image/jpeg", 0.85);
  }, FRAME_INTERVAL_MS);
  cameraTimer = timer;
  say("Webcam on: frames go to the server a few times a second.");
});

loadModels().catch((err) => say(`Cannot reach the server: ${err.message}`, true));
