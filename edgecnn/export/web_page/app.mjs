// The page of an edgecnn web bundle: onnxruntime-web (WebAssembly, one thread) runs model.onnx; the image is
// framed and normalised by preprocess.mjs exactly as the Python Predictor does it (bundle.json's contract).
// ?selftest=1 classifies the bundled samples and writes {file: {label, probability}} into <pre id="selftest">
// (and with &report=PATH also POSTs it there, to the server that served the page: how a headless browser's
// answer reaches a test).
import * as ort from "./ort/ort.wasm.bundle.min.mjs";
import { fromRGBA, toGraphInput, toModelPixels } from "./preprocess.mjs";

const $ = (id) => document.getElementById(id);

function softmax(logits) {
  const most = Math.max(...logits);
  const exps = logits.map((v) => Math.exp(v - most));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((v) => v / total);
}

async function main() {
  const bundle = await (await fetch("./bundle.json")).json();
  const contract = bundle.preprocessing;
  $("title").textContent = bundle.card.title;
  $("summary").textContent = bundle.card.summary;
  // the bundle build carries its JavaScript glue: only the .wasm is fetched, from the bundle's own folder
  ort.env.wasm.wasmPaths = { wasm: new URL("./ort/ort-wasm-simd-threaded.wasm", location.href).href };
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(await (await fetch("./model.onnx")).arrayBuffer(), {
    executionProviders: ["wasm"],
  });
  const [channels, height, width] = contract.input.shape;
  const graphShape = contract.graph_shape_batch_1;
  let lastFeed = null;

  async function classify(source, sourceWidth, sourceHeight) {
    const canvas = new OffscreenCanvas(sourceWidth, sourceHeight);
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(source, 0, 0);
    const rgba = context.getImageData(0, 0, sourceWidth, sourceHeight).data;
    const pixels = toModelPixels(fromRGBA(rgba, sourceWidth, sourceHeight, channels), contract);
    const data = toGraphInput(pixels, contract);
    const tensor = new ort.Tensor(contract.input.dtype === "uint8" ? "uint8" : "float32", data, graphShape);
    const started = performance.now();
    lastFeed = { [session.inputNames[0]]: tensor };
    const result = await session.run(lastFeed);
    const elapsed = performance.now() - started;
    const probabilities = softmax(Array.from(result[session.outputNames[0]].data));
    const order = probabilities.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]);
    show(pixels, order, elapsed, channels, height, width, contract.classes);
    return { label: contract.classes[order[0][1]], probability: order[0][0], ms: elapsed };
  }

  function decode(blob) {
    return createImageBitmap(blob, { imageOrientation: "from-image" }); // EXIF applied, as the Predictor does
  }

  $("file").addEventListener("change", async (event) => {
    const bitmap = await decode(event.target.files[0]);
    await classify(bitmap, bitmap.width, bitmap.height);
  });
  $("camera").addEventListener("click", async () => {
    const video = $("video");
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    video.hidden = false;
    $("snap").disabled = false;
  });
  $("snap").addEventListener("click", () => classify($("video"), $("video").videoWidth, $("video").videoHeight));
  setUpDrawing(classify);

  if (new URLSearchParams(location.search).get("selftest")) {
    const answers = {};
    for (const sample of bundle.samples) {
      const bitmap = await decode(await (await fetch(sample.file)).blob());
      const answer = await classify(bitmap, bitmap.width, bitmap.height);
      answers[sample.file] = { label: answer.label, probability: answer.probability, ms: answer.ms };
    }
    $("selftest").textContent = JSON.stringify(answers);
    const timing = await timed(session, lastFeed, TIMED_RUNS);
    const report = new URLSearchParams(location.search).get("report"); // a test harness's same-origin URL
    if (report && new URL(report, location.href).origin === location.origin) {
      await fetch(report, { method: "POST", body: JSON.stringify({ answers, timing }) });
    }
  }
}

const TIMED_RUNS = 100; // model calls timed after the self-test, on its last input

async function timed(session, feed, runs) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await session.run(feed);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50_ms: times[Math.floor(runs / 2)], p90_ms: times[Math.floor(runs * 0.9)], runs };
}

function show(pixels, order, elapsed, channels, height, width, classes) {
  const seen = $("seen").getContext("2d");
  const image = seen.createImageData(width, height);
  for (let i = 0; i < height * width; i++) {
    for (let c = 0; c < 3; c++) image.data[i * 4 + c] = pixels[(channels === 1 ? 0 : c) * height * width + i];
    image.data[i * 4 + 3] = 255;
  }
  const scratch = new OffscreenCanvas(width, height);
  scratch.getContext("2d").putImageData(image, 0, 0);
  seen.imageSmoothingEnabled = false;
  seen.drawImage(scratch, 0, 0, $("seen").width, $("seen").height);
  $("answer").innerHTML = order
    .slice(0, 3)
    .map(([p, i]) => `<tr><td>${classes[i]}</td><td>${(100 * p).toFixed(1)} %</td></tr>`)
    .join("");
  $("timing").textContent = `model call: ${elapsed.toFixed(2)} ms (WebAssembly, one thread)`;
}

function setUpDrawing(classify) {
  const canvas = $("draw");
  const context = canvas.getContext("2d");
  context.fillStyle = "#000";
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.strokeStyle = "#fff";
  context.lineWidth = 16;
  context.lineCap = "round";
  let drawing = false;
  const at = (event) => [event.offsetX, event.offsetY];
  canvas.addEventListener("pointerdown", (event) => { drawing = true; context.beginPath(); context.moveTo(...at(event)); });
  canvas.addEventListener("pointermove", (event) => { if (drawing) { context.lineTo(...at(event)); context.stroke(); } });
  canvas.addEventListener("pointerup", () => { drawing = false; });
  $("clear").addEventListener("click", () => context.fillRect(0, 0, canvas.width, canvas.height));
  $("classify-drawing").addEventListener("click", () => classify(canvas, canvas.width, canvas.height));
}

main().catch((error) => {
  $("warning").style.display = "block";
  $("warning").textContent = `edgecnn: ${error}`;
  $("selftest").textContent = JSON.stringify({ error: String(error) });
  const report = new URLSearchParams(location.search).get("report");
  if (report && new URL(report, location.href).origin === location.origin) {
    fetch(report, { method: "POST", body: JSON.stringify({ answers: { error: String(error) } }) });
  }
});
