// A model's logits on prepared inputs under onnxruntime-web's WebAssembly build (the kernels a browser
// runs), the same protocol as edgecnn/runtime/target_logits.py:
//     node web_logits.mjs MODEL INPUT.bin SHAPE_JSON DTYPE OUTPUT.f32 BATCH   (DTYPE: float32 or uint8)
// Copied next to node_modules/onnxruntime-web by `edgecnn targets setup wasm`; one thread, no proxy worker.
import * as ort from 'onnxruntime-web';
import { readFileSync, writeFileSync } from 'node:fs';

const [model, source, shapeJson, dtype, output, batchText] = process.argv.slice(2);
const shape = JSON.parse(shapeJson);
const batch = Number(batchText);
ort.env.wasm.numThreads = 1;
ort.env.wasm.proxy = false;
const bytes = readFileSync(source);
const raw = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
const feed = dtype === 'uint8' ? new Uint8Array(raw) : new Float32Array(raw);
const session = await ort.InferenceSession.create(readFileSync(model), { executionProviders: ['wasm'] });
const perImage = shape.slice(1).reduce((a, b) => a * b, 1);
const parts = [];
let outShape = null;
for (let start = 0; start < shape[0]; start += batch) {
  const count = Math.min(batch, shape[0] - start);
  const tensor = new ort.Tensor(dtype, feed.subarray(start * perImage, (start + count) * perImage), [count, ...shape.slice(1)]);
  const result = await session.run({ [session.inputNames[0]]: tensor });
  const out = result[session.outputNames[0]];
  outShape = out.dims;
  parts.push(Float32Array.from(out.data));
}
const total = parts.reduce((n, p) => n + p.length, 0);
const all = new Float32Array(total);
let offset = 0;
for (const p of parts) { all.set(p, offset); offset += p.length; }
writeFileSync(output, Buffer.from(all.buffer));
const rows = shape[0];
console.log(JSON.stringify({ runtime: 'onnxruntime-web', version: ort.env.versions.web, machine: 'wasm', shape: [rows, total / rows], last: outShape }));
