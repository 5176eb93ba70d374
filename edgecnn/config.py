"""Frozen, JSON-round-trippable configs, one per pipeline stage.

CLI options map 1:1 onto these fields; library functions take a config, never an argparse/click
namespace. Each default says why it is what it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.errors import ConfigError
from edgecnn.fields import (
    AUTO_BACKENDS,
    auto_backend_problems,
    check_fields,
    config_from_dict,
    config_to_dict,
    config_to_json,
)

__all__ = [
    "TrainConfig",
    "QuantizationSettings",
    "ExportConfig",
    "QuantizeConfig",
    "BenchConfig",
    "ServeConfig",
    "ClusterConfig",
    "ENGINES",
    "config_to_dict",
    "config_from_dict",
    "config_to_json",
    "OPTIMIZERS",
    "DEVICES",
    "PROVIDERS",
    "CALIBRATION_METHODS",
    "WEIGHT_FORMATS",
    "PARITY_BATCH_SIZES",
    "AUTO_BACKENDS",
    "BATCH_SIZE_HINT",
    "MAX_ACCURACY_DROP",
    "TuneConfig",
    "CheckConfig",
    "FIT_MODES",
    "INPUT_LAYOUTS",
    "SCHEDULES",
    "AUGMENTATIONS",
]

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "onecycle")  # learning rate over the run (training/schedule.py)
AUGMENTATIONS = ("none", "affine", "crop-flip", "flip")  # per batch (training/augment.py): affine for digits,
#   crop-flip (padded crop, mirror) for clothing, flip alone for nets too small to fit shifted copies too
DEVICES = ("auto", "cpu", "cuda")  # torch devices for training
PROVIDERS = ("auto", "cpu", "cuda")  # onnxruntime execution providers, as users name them
WEIGHT_FORMATS = ("int8", "int7", "uint8")  # static int8's weights (QuantizationSettings.weights)
CALIBRATION_METHODS = ("auto", "minmax", "percentile", "entropy")  # auto: the best of the three (calibrate.py)
PARITY_BATCH_SIZES = (1, 2, 7, 64)  # 1, 2: a batch axis fixed at export; 7: an odd remainder; 64: batched kernels
FIT_MODES = ("stretch", "pad", "crop", "object", "digit")  # how a photo is framed (runtime/framing.py)
INPUT_LAYOUTS = ("NCHW", "NHWC")  # float32 input of a model without edgecnn metadata: torch or Keras order
BATCH_SIZE_HINT = 32  # the batch the app will run: auto and tune time batch 1 and this one (a camera burst)
MAX_ACCURACY_DROP = 0.3  # percentage points a quantized model may lose vs its reference (torch, or the fp32 file)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and nothing about where it prints)."""

    arch: str = "fashion_bn"  # the smallest seed net (BENCHMARKS.md, "One epoch of each seed net": its one epoch)
    dataset: str = "fashion-mnist"  # "mnist", "fashion-mnist" or a path to an image folder
    epochs: int = 5  # the tutorials train 5–15 epochs; 5 is where most of them flatten out
    batch_size: int = 100  # the seed tutorials' batch size
    lr: float = 1e-3  # Adam's default, used by every seed tutorial
    optimizer: str = "adam"  # the seed tutorials all use Adam
    momentum: float = 0.9  # only for sgd/rmsprop; 0.9 is the usual choice for small CNNs
    weight_decay: float = 0.0  # the tutorials use none (adamw: decoupled, as in Loshchilov & Hutter)
    schedule: str = "constant"  # the tutorials keep one learning rate; cosine/onecycle for longer runs
    warmup_epochs: float = 0.0  # linear warm-up; onecycle with 0 warms up over its first 30 % (torch's pct_start)
    label_smoothing: float = 0.0  # the tutorials use plain cross-entropy
    augment: str = "none"  # off by default: the tutorials train on the images as they are
    val_size: int | None = None  # held out of the training set (seeded, per class) to choose the epoch
    #   kept and to stop early; None: 1/12 of it, at most 5,000 (MNIST: 5,000); 0: none, the last epoch is kept
    patience: int = 0  # stop after this many epochs without a better validation accuracy; 0: never
    init: str | None = None  # start from trained weights: zoo:NAME or a .safetensors file; None: random
    seed: int = 0  # fixed by default so two runs of the same command agree
    limit_train: int | None = None  # a seeded random subset of the training set, for quick runs
    image_size: int = 28  # input side for image folders; MNIST-style sets are 28×28 already
    test_fraction: float = 0.2  # held-out share of an image folder that has no train/ + test/ split
    device: str = "auto"  # cuda when torch sees one, else cpu
    data_root: str | None = None  # None: $EDGECNN_DATA, else the user cache dir
    checkpoint_every: int | None = None  # also checkpoint every N optimizer steps, mid-epoch: a killed run then
    #   loses at most N steps and resumes exactly where it was; None: at epoch ends only (an epoch here is seconds)
    local_batchnorm: bool = False  # several processes: BatchNorm statistics per process (torch's DDP default),
    #   not the global batch's (SyncBatchNorm): a little faster, no longer one process's math
    dist_timeout: float = 120.0  # seconds a process waits for a peer in a collective before the run fails
    #   (torch's default is 30 minutes: a dead peer would hang the others that long)
    max_memory_gb: float | None = None  # an image folder whose decoded images would take more on this machine
    #   (each process its copy) is read from disk batch by batch; None: half the RAM available; 0: always
    workers: int | None = None  # processes decoding an image folder (its scan; its batches when on disk);
    #   None: for the scan this process's share of the cores, 1 to 4; for batches, the same on CUDA and 0 (the
    #   training process itself) on the CPU, whose threads already use the cores

    def __post_init__(self) -> None:
        problems = check_fields(self)
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {self.optimizer!r})")
        for name, allowed in (("schedule", SCHEDULES), ("augment", AUGMENTATIONS)):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {', '.join(allowed)} (got {getattr(self, name)!r})")
        if self.device not in DEVICES:
            problems.append(f"device must be one of {', '.join(DEVICES)} (got {self.device!r})")
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class QuantizationSettings:
    """How the variants of a model are built, gated and measured, and where the labelled data comes from: what
    ``edgecnn export`` (from a checkpoint) and ``edgecnn quantize`` (from an fp32 ONNX file) share. Both configs
    are these settings plus their own fields, so each shared field, its default and its help exist once."""

    quantize_ops: tuple[str, ...] | None = None  # None: the mode's own choice (dynamic: MatMul, Gemm)
    min_weight_elements: int = 65536  # dynamic: smaller MatMul/Gemm weights (fashion_bn's 1568×10 head) lose more to
    #   the per-call activation quantization than they gain; BENCHMARKS.md "Quantization" has the dynamic rows
    calibration_samples: int = 500  # static: training images to calibrate on, a stratified sample; BENCHMARKS.md
    #   "Quantization" was measured with 500
    calibration_method: str = "auto"  # static: which method keeps a net within the gates depends on the net; auto
    #   tries minmax, percentile and entropy and keeps the most accurate that passes (export/calibrate.py); a named
    #   one is used alone
    max_accuracy_drop: float = MAX_ACCURACY_DROP
    parity_samples: int = 10000  # the whole MNIST-style test set; lower it for quick checks
    latency_iters: int = 200  # timed runs per variant and batch size for the report card and `auto`
    batch_size_hint: int = BATCH_SIZE_HINT
    backends: tuple[str, ...] | None = None  # what auto measures on; None: every one installed (openvino too)
    seed: int = 0  # picks the calibration sample (and splits an image folder without train/ + test/, as training)
    data_root: str | None = None  # None: the checkpoint's own, else $EDGECNN_DATA, else the user cache dir
    weights: str = "int8"  # static: int8; int7 (reduce_range: no u8×s8 pair saturates 16 bits on x86 without VNNI,
    #   at half the weight resolution); uint8 (onnxruntime's u8×u8 kernels never saturate; slower on VNNI)
    targets: tuple[str, ...] | None = None  # also gate each variant on these targets' kernels (`edgecnn targets`);
    #   a static one that fails is rebuilt with int7, then uint8 weights (export/on_targets.py); None: here only

    def __post_init__(self) -> None:
        problems = check_fields(self)
        if self.weights not in WEIGHT_FORMATS:
            problems.append(f"weights must be one of {', '.join(WEIGHT_FORMATS)} (got {self.weights!r})")
        if self.calibration_method not in CALIBRATION_METHODS:
            problems.append(
                f"calibration_method must be one of {', '.join(CALIBRATION_METHODS)} (got {self.calibration_method!r})"
            )
        problems += auto_backend_problems(self.backends)
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class ExportConfig(QuantizationSettings):
    """How a checkpoint becomes an ONNX file, and the gates it must pass. The quantization mode's name is checked
    by the mode registry (edgecnn.export.modes) when the export starts, and by the CLI's choices."""

    opset: int = 18  # the torch.export-based exporter's native opset; onnxruntime ≥1.14 runs it
    quantize: str = "none"  # fp32 unless asked: int8 is a trade the user (or `auto`'s measurement) makes
    bake_preprocessing: bool = False  # True: the graph takes raw uint8 pixels and normalises itself


@dataclass(frozen=True)
class QuantizeConfig(QuantizationSettings):
    """How an existing fp32 ONNX file becomes a quantized one, gated against that file on real data."""

    mode: str = "auto"  # measure dynamic and static against fp32 on this machine, keep the fastest that passes
    calibration: str | None = None  # mnist, fashion-mnist or an image folder; None: the model card's dataset
    classes: tuple[str, ...] | None = None  # a file without edgecnn metadata: its class names (else the data's)
    mean: tuple[float, ...] | None = None  # … and the normalization it was trained with, per channel
    std: tuple[float, ...] | None = None
    layout: str | None = None  # … and "NCHW" (default) or "NHWC"


@dataclass(frozen=True)
class TuneConfig:
    """What `edgecnn tune` measures on the device, and for how long (runtime/tuning.py)."""

    batch_size_hint: int = BATCH_SIZE_HINT
    budget: float | None = None  # seconds for the whole tuning; None: every configuration, 100 timed runs each
    max_accuracy_drop: float = MAX_ACCURACY_DROP
    backends: tuple[str, ...] | None = None  # what it measures on; None: every one installed (openvino too)
    threads: int | None = None  # pin the intra-op threads (as `edgecnn serve --threads` runs); None: 1, 2, 4 … cores

    def __post_init__(self) -> None:
        problems = check_fields(self) + auto_backend_problems(self.backends)
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class CheckConfig:
    """What `edgecnn check` runs on the targets, and the gates (runtime/checking.py, runtime/targets.py)."""

    targets: tuple[str, ...] = ("all",)  # target names (`edgecnn targets` lists them), or all
    data: str | None = None  # mnist, fashion-mnist or a folder of class folders; None: the model card's dataset
    samples: int = 1000  # labelled test images, prepared once here, run on every target (the zoo: 2,000)
    max_accuracy_drop: float = MAX_ACCURACY_DROP
    reference: str | None = None  # an fp32 .onnx file to judge against; None: the zoo net's fp32, else the file
    jobs: int | None = None  # processes per target, each a share of the images (QEMU runs one thread); None: cores

    def __post_init__(self) -> None:
        problems = check_fields(self)
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class BenchConfig:
    """What `edgecnn bench` measures and how long."""

    provider: str = "auto"  # as the Predictor: cuda when onnxruntime offers a working one, else cpu
    backends: tuple[str, ...] = ("onnxruntime",)  # each model on each: onnxruntime, openvino (OpenVINO's CPU, f32)
    batch_sizes: tuple[int, ...] = (1, 8, 64)  # a camera frame, a small burst, a throughput batch
    threads: tuple[int, ...] | None = None  # each model at each thread count, interleaved in one run;
    #   None: the Predictor's default (the thread policy, runtime/backends.py)
    warmup: int = 20  # untimed runs per model and batch size: first calls allocate and pack weights
    iters: int = 200  # timed runs per model and batch size (ignored when duration is set)
    duration: float | None = None  # seconds per batch size for all models together, instead of iters
    cold_runs: int = 3  # fresh processes per model for the cold-start figure (median)
    allow_fallback: bool = False  # provider cuda without a working CUDA: refuse (False) or warn and use the CPU
    shape: tuple[int, ...] | None = None  # a model whose input has symbolic sizes besides the batch: one
    #   input's dims after the batch axis (e.g. 3,224,224); edgecnn models know their own

    def __post_init__(self) -> None:
        problems = check_fields(self)
        if self.provider not in PROVIDERS:
            problems.append(f"provider must be one of {', '.join(PROVIDERS)} (got {self.provider!r})")
        if self.shape is not None and not self.shape:
            problems.append("shape needs at least one size")
        wrong = [b for b in self.backends if b not in ("onnxruntime", "openvino")]
        if wrong or not self.backends:
            problems.append(f"backends must be onnxruntime and/or openvino (got {','.join(self.backends) or 'none'})")
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class ServeConfig:
    """What `edgecnn serve` listens on, how it batches, and what it accepts."""

    host: str = "127.0.0.1"  # loopback: this machine only; a LAN address wants --token-file too
    port: int = 8000  # Triton's HTTP port, where Open Inference Protocol clients look first; 0: any free port
    max_batch: int = 32  # images per model call: a camera burst, as BENCHMARKS.md "Serving" measured it
    max_delay_ms: float = 2.0  # longest a request waits for others to share its call; 0 batches only what waits
    queue: int = 256  # images waiting per model; beyond: 503 with Retry-After, never an unbounded backlog
    provider: str = "auto"  # as the Predictor: cuda when onnxruntime offers a working one, else cpu
    backend: str = "auto"  # as the Predictor: the backend auto recorded in the file, else onnxruntime
    threads: int | None = 1  # intra-op threads per model. 1, not the Predictor's policy (2, spinning): the event
    #   loop and the clients need a core too; on 2 cores 1 thread gave +15 % req/s at half the server CPU and a
    #   lower p99 (tools/load_test.py, keras_same int8, 32 clients). None: the policy (runtime/backends.py)
    token_file: str | None = None  # a file holding the bearer token every route but health requires
    max_body_bytes: int = 16 << 20  # a request body (after decompression): 4096 images of 28×28 FP32 are 12.8 MB
    max_images: int = 256  # images per request: larger batches are the client's to split
    max_pixels: int = 24_000_000  # per uploaded image, from its header before decoding (a 24-megapixel photo)
    max_header_bytes: int = 16 << 10  # a request's head (request line + headers): 431 beyond, before it is held;
    #   h11's and Node's default, room for a long bearer token
    max_headers: int = 100  # header lines per request (Apache's LimitRequestFields): 431 beyond
    max_url_bytes: int = 8 << 10  # the request target, query included (Apache's LimitRequestLine): 414 beyond
    call_timeout: float = 30.0  # one model call (a batch): 504 beyond, the call stopped; these nets take milliseconds
    drain_timeout: float = 30.0  # SIGTERM/SIGINT/SIGHUP: how long requests in flight get to finish; past it the rest
    #   are cut, stuck model calls abandoned, and the exit status is 1
    access_log: str = "-"  # one JSON line per request: "-" stderr, a file path, or "off"
    max_requests: int | None = None  # stop (draining) after this many requests: tests and load tests
    stop_after: float | None = None  # stop (draining) after this many seconds: tests and load tests

    def __post_init__(self) -> None:
        problems = check_fields(self)
        if self.provider not in PROVIDERS:
            problems.append(f"provider must be one of {', '.join(PROVIDERS)} (got {self.provider!r})")
        if not self.host:
            problems.append("host must name an address to listen on (127.0.0.1 for this machine only)")
        if problems:
            raise ConfigError("; ".join(problems))


ENGINES = ("process", "ray")  # where serve and predict run: this process, or a Ray cluster (docs/ray.md)


@dataclass(frozen=True)
class ClusterConfig:
    """Where `serve` and `predict` run: this process, or Ray Serve replicas / Ray Data actors on a Ray cluster."""

    engine: str = "process"  # process: this process alone, no Ray; ray: pip install 'edgecnn[ray]'
    address: str | None = None  # a Ray cluster to join (auto, HOST:6379); None: one on 127.0.0.1 for this command
    replicas: int = 1  # Serve replicas or Data actors, each holding the model: one per core a model call can use
    max_replicas: int | None = None  # autoscale from replicas up to this many with the load; None: a fixed count

    def __post_init__(self) -> None:
        problems = check_fields(self)
        if self.engine not in ENGINES:
            problems.append(f"engine must be one of {', '.join(ENGINES)} (got {self.engine!r})")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            problems.append(f"max_replicas must be at least replicas ({self.replicas})")
        if self.engine == "process" and (self.address or self.replicas != 1 or self.max_replicas):
            problems.append("--address, --replicas and --max-replicas need --engine ray")
        if problems:
            raise ConfigError("; ".join(problems))
