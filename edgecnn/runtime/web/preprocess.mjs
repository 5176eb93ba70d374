// The Predictor's preprocessing in JavaScript, for pages and apps that run a model with onnxruntime-web: the
// framing of runtime/framing.py, the light-background inversion and normalisation of runtime/preprocess.py,
// and Pillow's resampling (box, bilinear, Lanczos: Pillow's separable fixed-point algorithm, ported) so the
// same pixels give the same model input as in Python. Float steps follow numpy's types (float32 where numpy
// computes in float32, round-half-to-even where numpy or Python round). tests/runtime/test_web_preprocess.py
// runs it under Node against the Python code on real test images and photo-like framings of them.
//
// An image is {data: Uint8Array (height × width × channels, row-major), width, height, channels}.

export const FIT_MODES = ["stretch", "pad", "crop", "object", "digit"];
const OBJECT_LEVEL = 0.15;
const DIGIT_BOX = 20 / 28;
const WORKING_SIDE = 16;
const PRECISION_BITS = 32 - 8 - 2;
const f32 = Math.fround;

const FILTERS = {
  box: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1.0 : 0.0) },
  bilinear: { support: 1.0, f: (x) => { x = Math.abs(x); return x < 1.0 ? 1.0 - x : 0.0; } },
  lanczos: { support: 3.0, f: (x) => (-3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0) },
};

function sinc(x) {
  if (x === 0.0) return 1.0;
  x *= Math.PI;
  return Math.sin(x) / x;
}

/** Python's round() and numpy's rint: halves to even. */
export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function image(width, height, channels, data) {
  return { width, height, channels, data: data || new Uint8Array(width * height * channels) };
}

// ---- Pillow's resampling (libImaging/Resample.c), 8 bits per channel ------------------------------------

function coefficients(inSize, outSize, filter) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1.0);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Float64Array(outSize * ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1.0 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.f((x + xmin - center + 0.5) * ss);
      kk[xx * ksize + x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) if (ww !== 0.0) kk[xx * ksize + x] /= ww;
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  const fixed = new Float64Array(kk.length); // integers, exact in a double
  for (let i = 0; i < kk.length; i++) {
    const v = kk[i] * (1 << PRECISION_BITS);
    fixed[i] = kk[i] < 0 ? Math.trunc(-0.5 + v) : Math.trunc(0.5 + v);
  }
  return { bounds, kk: fixed, ksize };
}

function clip8(sum) {
  if (sum >= 2 ** (PRECISION_BITS + 8)) return 255;
  if (sum <= 0) return 0;
  return Math.floor(sum / 2 ** PRECISION_BITS);
}

function resampleAxis(img, outSize, filter, horizontal) {
  const { width, height, channels, data } = img;
  const { bounds, kk, ksize } = coefficients(horizontal ? width : height, outSize, filter);
  const out = horizontal ? image(outSize, height, channels) : image(width, outSize, channels);
  const half = 2 ** (PRECISION_BITS - 1);
  for (let y = 0; y < out.height; y++) {
    for (let x = 0; x < out.width; x++) {
      const o = horizontal ? x : y;
      const min = bounds[o * 2];
      const count = bounds[o * 2 + 1];
      for (let c = 0; c < channels; c++) {
        let sum = half;
        for (let k = 0; k < count; k++) {
          const index = horizontal ? (y * width + min + k) * channels + c : ((min + k) * width + x) * channels + c;
          sum += data[index] * kk[o * ksize + k];
        }
        out.data[(y * out.width + x) * channels + c] = clip8(sum);
      }
    }
  }
  return out;
}

/** Pillow's Image.resize((width, height), filter) of an 8-bit image: two passes, horizontal first, except that
 * a shrinking vertical pass goes before a growing horizontal one (as Pillow 13 orders them: measured, byte for
 * byte, in tests/runtime/test_web_preprocess.py). */
export function resize(img, width, height, filterName) {
  if (img.width === width && img.height === height) return img;
  const filter = FILTERS[filterName];
  const verticalFirst = height < img.height && width > img.width;
  let out = img;
  if (verticalFirst) out = resampleAxis(out, height, filter, false);
  if (width !== img.width) out = resampleAxis(out, width, filter, true);
  if (!verticalFirst && height !== img.height) out = resampleAxis(out, height, filter, false);
  return out;
}

// ---- numpy helpers ---------------------------------------------------------------------------------------

function median(values) {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/** numpy.percentile of float32 values (linear): interpolated in float64 as numpy's _lerp does, then float32. */
function percentile(values, q) {
  const sorted = Float64Array.from(values).sort();
  const position = ((sorted.length - 1) * q) / 100;
  const low = Math.floor(position);
  const [a, b] = [sorted[low], sorted[Math.min(low + 1, sorted.length - 1)]];
  const t = position - low;
  const diff = f32(b - a);
  return f32(t >= 0.5 ? b - diff * (1 - t) : a + diff * t);
}

/** numpy.median of float32 values: the two middles' mean in float32. */
function medianF32(values) {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2] : f32(f32(sorted[n / 2 - 1] + sorted[n / 2]) / 2);
}

/** The outermost ring's pixels in framing.py's order: top row, bottom row, left column, right column. */
export function borderPixels(img) {
  const { width, height, channels, data } = img;
  const at = (y, x) => Array.from(data.subarray((y * width + x) * channels, (y * width + x + 1) * channels));
  const ring = [];
  for (let x = 0; x < width; x++) ring.push(at(0, x));
  for (let x = 0; x < width; x++) ring.push(at(height - 1, x));
  for (let y = 1; y < height - 1; y++) ring.push(at(y, 0));
  for (let y = 1; y < height - 1; y++) ring.push(at(y, width - 1));
  return ring;
}

function channelMedians(img) {
  const ring = borderPixels(img);
  return Array.from({ length: img.channels }, (_, c) => median(ring.map((p) => p[c])));
}

// ---- the framing modes (runtime/framing.py) -------------------------------------------------------------

export function fitImage(img, height, width, fit, darkBackground) {
  if (!FIT_MODES.includes(fit)) throw new Error(`fit must be one of ${FIT_MODES.join(", ")} (got ${fit})`);
  if (fit === "stretch") return resize(img, width, height, "bilinear");
  img = shrunk(img, WORKING_SIDE * Math.max(height, width));
  if (fit === "digit") return digit(img, height, width);
  let background = channelMedians(img);
  if (fit === "object") {
    if (darkBackground) {
      img = levelled(img);
      background = new Array(img.channels).fill(0);
    }
    return resize(objectSquare(img, background), width, height, "lanczos");
  }
  if (fit === "pad") return padTo(img, height, width, background);
  return cropTo(img, height, width);
}

function shrunk(img, longest) {
  const { width, height } = img;
  if (Math.max(width, height) <= longest) return img;
  const scale = longest / Math.max(width, height);
  return resize(img, Math.max(1, roundHalfEven(width * scale)), Math.max(1, roundHalfEven(height * scale)), "box");
}

function filled(width, height, channels, background) {
  const out = image(width, height, channels);
  const value = background.map((v) => roundHalfEven(v));
  for (let i = 0; i < width * height; i++) for (let c = 0; c < channels; c++) out.data[i * channels + c] = value[c];
  return out;
}

function paste(canvas, piece, top, left) {
  const c = canvas.channels;
  for (let y = 0; y < piece.height; y++) {
    const row = piece.data.subarray(y * piece.width * c, (y + 1) * piece.width * c);
    canvas.data.set(row, ((top + y) * canvas.width + left) * c);
  }
}

function crop(img, top, left, rows, cols) {
  const c = img.channels;
  const out = image(cols, rows, c);
  for (let y = 0; y < rows; y++) {
    const start = ((top + y) * img.width + left) * c;
    out.data.set(img.data.subarray(start, start + cols * c), y * cols * c);
  }
  return out;
}

function padTo(img, height, width, background) {
  const scale = Math.min(width / img.width, height / img.height);
  const inner = resize(
    img,
    Math.max(1, roundHalfEven(img.width * scale)),
    Math.max(1, roundHalfEven(img.height * scale)),
    "bilinear",
  );
  const canvas = filled(width, height, img.channels, background);
  paste(canvas, inner, Math.floor((height - inner.height) / 2), Math.floor((width - inner.width) / 2));
  return canvas;
}

function cropTo(img, height, width) {
  const rows = img.height;
  const cols = img.width;
  const [keepRows, keepCols] =
    cols * height > rows * width ? [rows, roundHalfEven((rows * width) / height)] : [roundHalfEven((cols * height) / width), cols];
  const cut = crop(img, Math.floor((rows - keepRows) / 2), Math.floor((cols - keepCols) / 2), keepRows, keepCols);
  return resize(cut, width, height, "bilinear");
}

/** The rows and columns holding values of at least OBJECT_LEVEL of the strongest (``float32``: numpy compares
 * a float32 array with the threshold rounded to float32); null if nothing stands out. */
function box(strength, width, height) {
  let peak = -Infinity;
  for (const v of strength) peak = Math.max(peak, v);
  if (peak < 8) return null;
  const level = strength instanceof Float32Array ? f32(OBJECT_LEVEL * peak) : OBJECT_LEVEL * peak;
  let [top, bottom, left, right] = [height, -1, width, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (strength[y * width + x] >= level) {
        top = Math.min(top, y);
        bottom = Math.max(bottom, y);
        left = Math.min(left, x);
        right = Math.max(right, x);
      }
    }
  }
  return { top, left, rows: bottom - top + 1, cols: right - left + 1 };
}

function objectSquare(img, background) {
  const { width, height, channels, data } = img;
  const strength = new Float64Array(width * height);
  for (let i = 0; i < width * height; i++) {
    let most = 0;
    for (let c = 0; c < channels; c++) most = Math.max(most, Math.abs(f32(data[i * channels + c]) - background[c]));
    strength[i] = most;
  }
  const found = box(strength, width, height);
  if (found === null) return img;
  const piece = crop(img, found.top, found.left, found.rows, found.cols);
  const side = Math.max(piece.height, piece.width);
  const square = filled(side, side, channels, background);
  paste(square, piece, Math.floor((side - piece.height) / 2), Math.floor((side - piece.width) / 2));
  return square;
}

/** A plane a + b·x + c·y fitted (least squares) to the border of one channel: float32 width × height. */
function backgroundPlane(values, width, height) {
  const ring = [];
  const add = (y, x) => ring.push([1, x, y, values[y * width + x]]);
  for (let x = 0; x < width; x++) add(0, x);
  for (let x = 0; x < width; x++) add(height - 1, x);
  for (let y = 1; y < height - 1; y++) add(y, 0);
  for (let y = 1; y < height - 1; y++) add(y, width - 1);
  const ata = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
  const atb = [0, 0, 0];
  for (const [one, x, y, v] of ring) {
    const row = [one, x, y];
    for (let i = 0; i < 3; i++) {
      atb[i] += row[i] * v;
      for (let j = 0; j < 3; j++) ata[i][j] += row[i] * row[j];
    }
  }
  const [a, b, c] = solve3(ata, atb);
  const plane = new Float32Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) plane[y * width + x] = a + b * x + c * y;
  return plane;
}

function solve3(m, v) {
  const a = m.map((row, i) => [...row, v[i]]);
  for (let col = 0; col < 3; col++) {
    let pivot = col;
    for (let r = col + 1; r < 3; r++) if (Math.abs(a[r][col]) > Math.abs(a[pivot][col])) pivot = r;
    [a[col], a[pivot]] = [a[pivot], a[col]];
    for (let r = 0; r < 3; r++) {
      if (r === col || a[col][col] === 0) continue;
      const factor = a[r][col] / a[col][col];
      for (let k = col; k < 4; k++) a[r][k] -= factor * a[col][k];
    }
  }
  return a.map((row, i) => (row[i] === 0 ? 0 : row[3] / row[i]));
}

function levelled(img) {
  const { width, height, channels, data } = img;
  const out = image(width, height, channels);
  for (let c = 0; c < channels; c++) {
    const values = new Float64Array(width * height);
    for (let i = 0; i < width * height; i++) values[i] = data[i * channels + c];
    const plane = backgroundPlane(values, width, height);
    const span = Math.max(255.0 - medianF32(plane), 32.0);
    const gain = f32(255.0 / span);
    for (let i = 0; i < width * height; i++) {
      const v = f32(f32(values[i] - plane[i]) * gain);
      out.data[i * channels + c] = roundHalfEven(Math.min(255, Math.max(0, v)));
    }
  }
  return out;
}

function digit(img, height, width) {
  if (img.channels !== 1) throw new Error("fit='digit' is for grey MNIST-style models; use 'object', 'pad' or 'crop'");
  const { width: w, height: h, data } = img;
  const plane = backgroundPlane(Float64Array.from(data), w, h);
  const ink = new Float32Array(w * h);
  for (let i = 0; i < w * h; i++) ink[i] = Math.max(0, f32(data[i] - plane[i]));
  const found = box(ink, w, h);
  if (found === null) return resize(img, width, height, "bilinear");
  const piece = new Float32Array(found.rows * found.cols);
  let most = 0;
  for (let y = 0; y < found.rows; y++) {
    for (let x = 0; x < found.cols; x++) {
      piece[y * found.cols + x] = ink[(found.top + y) * w + found.left + x];
      most = Math.max(most, piece[y * found.cols + x]);
    }
  }
  const peak = percentile(piece.filter((v) => v >= f32(OBJECT_LEVEL * most)), 95);
  const bytes = new Uint8Array(piece.length);
  const divisor = f32(Math.max(peak, 1.0));
  for (let i = 0; i < piece.length; i++) {
    bytes[i] = Math.trunc(f32(Math.min(1, Math.max(0, f32(piece[i] / divisor))) * 255)); // astype(uint8) truncates
  }
  const scale = (DIGIT_BOX * Math.min(height, width)) / Math.max(found.rows, found.cols);
  const size = [Math.max(1, roundHalfEven(found.cols * scale)), Math.max(1, roundHalfEven(found.rows * scale))];
  const small = resize(image(found.cols, found.rows, 1, bytes), size[0], size[1], "lanczos");
  return centreOfMassPaste(small, height, width);
}

function centreOfMassPaste(small, height, width) {
  let total = 0;
  let sumRows = 0;
  let sumCols = 0;
  for (let y = 0; y < small.height; y++) {
    for (let x = 0; x < small.width; x++) {
      const v = small.data[y * small.width + x];
      total += v;
      sumRows += y * v;
      sumCols += x * v;
    }
  }
  const centre = total ? [sumRows / total, sumCols / total] : [small.height / 2, small.width / 2];
  const top = roundHalfEven(height / 2 - centre[0]);
  const left = roundHalfEven(width / 2 - centre[1]);
  const out = image(width, height, 1);
  for (let y = Math.max(0, top); y < Math.min(height, top + small.height); y++) {
    for (let x = Math.max(0, left); x < Math.min(width, left + small.width); x++) {
      out.data[y * width + x] = small.data[(y - top) * small.width + (x - left)];
    }
  }
  return out;
}

// ---- pixels → the model's input (runtime/preprocess.py) --------------------------------------------------

/** RGBA (a canvas's ImageData) → the model's channels: alpha onto white, grey by Pillow's luma formula. */
export function fromRGBA(rgba, width, height, channels) {
  const out = image(width, height, channels);
  for (let i = 0; i < width * height; i++) {
    const a = rgba[i * 4 + 3];
    const rgb = [0, 1, 2].map((k) => (a === 255 ? rgba[i * 4 + k] : roundHalfEven((rgba[i * 4 + k] * a + 255 * (255 - a)) / 255)));
    if (channels === 1) out.data[i] = (rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16;
    else out.data.set(rgb, i * 3);
  }
  return out;
}

function lightBorder(img) {
  const ring = borderPixels(img).flat();
  return ring.filter((v) => v > 127).length * 2 > ring.length;
}

/** One image (model channels) → uint8 C×H×W at the model's size, as Predictor.prepare frames it. */
export function toModelPixels(img, contract, fit) {
  const [channels, height, width] = contract.input.shape;
  const dark = contract.invert_light_backgrounds;
  if (dark && lightBorder(img)) img = { ...img, data: img.data.map((v) => 255 - v) };
  const framed = fitImage(img, height, width, fit || contract.framing.default, dark);
  const chw = new Uint8Array(channels * height * width);
  for (let i = 0; i < height * width; i++) for (let c = 0; c < channels; c++) chw[c * height * width + i] = framed.data[i * channels + c];
  return chw;
}

/** uint8 C×H×W → the graph's input for one image: normalised float32 (C×H×W, or H×W×C channels-last), or uint8. */
export function toGraphInput(chw, contract) {
  const [channels, height, width] = contract.input.shape;
  if (contract.input.baked) {
    if (channels === 1) return chw;
    const hwc = new Uint8Array(chw.length);
    for (let i = 0; i < height * width; i++) for (let c = 0; c < channels; c++) hwc[i * channels + c] = chw[c * height * width + i];
    return hwc;
  }
  const { mean, std } = contract.normalization;
  const out = new Float32Array(chw.length);
  const plane = height * width;
  for (let c = 0; c < channels; c++) {
    const m = f32(mean[c]);
    const s = f32(std[c]);
    for (let i = 0; i < plane; i++) out[c * plane + i] = f32(f32(f32(chw[c * plane + i]) / 255) - m) / s;
  }
  if (contract.input.layout !== "NHWC") return out;
  const hwc = new Float32Array(out.length);
  for (let i = 0; i < plane; i++) for (let c = 0; c < channels; c++) hwc[i * channels + c] = out[c * plane + i];
  return hwc;
}
