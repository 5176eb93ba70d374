"""What ``/metrics`` shows, in Prometheus' text format (``prometheus_client``, one registry per server).

Requests by route, model and status; request latency and model-call latency as histograms; the batch sizes
the dynamic batcher formed; each model's queue depth and load time. Labels are the route's name and a served
model's name (or empty), never a client's raw path, so a scan of random URLs cannot grow the series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from edgecnn.serve.models import ServedModel

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]

# Seconds, 0.25 ms to 10 s: a small net's int8 call falls in the first bucket (BENCHMARKS.md, "Serving": the
# Predictor alone), a queue backed up behind large uploads in the last.
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.models: Mapping[str, ServedModel] = {}
        self.requests = Counter(
            "edgecnn_requests", "HTTP requests answered", ["route", "model", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "edgecnn_request_duration_seconds",
            "Time from a request's arrival to its last response byte",
            ["route", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "edgecnn_batch_size", "Images per model call", ["model"], buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.inference = Histogram(
            "edgecnn_inference_duration_seconds",
            "Time of one model call (a whole batch)",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_ModelState(lambda: self.models))

    def observer(self, model: str) -> Callable[[int, float], None]:
        """What a model's batcher calls after each model call."""
        sizes, seconds = self.batch_size.labels(model), self.inference.labels(model)

        def observe(images: int, elapsed: float) -> None:
            sizes.observe(images)
            seconds.observe(elapsed)

        return observe

    def record(self, route: str, model: str, status: int, elapsed: float) -> None:
        self.requests.labels(route, model, str(status)).inc()
        self.latency.labels(route, model).observe(elapsed)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ModelState:
    """Read at each scrape: the images waiting per model, and how long each took to load."""

    def __init__(self, models: Callable[[], Mapping[str, ServedModel]]) -> None:
        self._models = models

    def collect(self) -> Iterator[Any]:
        queued = GaugeMetricFamily("edgecnn_queue_images", "Images waiting for a model call", labels=["model"])
        load = GaugeMetricFamily("edgecnn_model_load_seconds", "Seconds the model took to load", labels=["model"])
        for name, model in self._models().items():
            queued.add_metric([name], model.batcher.stats.queued_images)
            load.add_metric([name], model.load_seconds)
        yield queued
        yield load
