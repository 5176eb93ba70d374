// node frame_cli.mjs CONTRACT.json JOBS.json: each job {"in": RGBA.bin, "width", "height", "fit", "out"} → the
// model's uint8 C×H×W pixels written to "out", framed by preprocess.mjs as Predictor.prepare frames them
// (tests/runtime/test_web_preprocess.py compares them with the Python code's, byte for byte).
import { readFileSync, writeFileSync } from "node:fs";
import { fromRGBA, toModelPixels } from "./preprocess.mjs";

const [contractPath, jobsPath] = process.argv.slice(2);
const contract = JSON.parse(readFileSync(contractPath, "utf8"));
for (const job of JSON.parse(readFileSync(jobsPath, "utf8"))) {
  const img = fromRGBA(new Uint8Array(readFileSync(job.in)), job.width, job.height, contract.input.shape[0]);
  writeFileSync(job.out, toModelPixels(img, contract, job.fit));
}
