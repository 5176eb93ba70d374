"""The dynamic batcher with a real numpy model function: requests merged up to max_batch within
max_delay, each answered with its own rows; a failing batch fails only its requests; a full queue is
refused at once; stop() answers what is queued."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from edgecnn.serve.batching import Batcher, QueueFull


class Model:
    """Row sums, a little slow (so requests pile up), recording each call's batch size."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.calls: list[int] = []
        self.fail_on = fail_on

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(len(x))
        time.sleep(0.01)
        if self.fail_on is not None and (x == self.fail_on).any():
            raise RuntimeError("the model failed on this batch")
        return x.reshape(len(x), -1).sum(1, keepdims=True)


def _requests(count: int, images: int = 1) -> list[np.ndarray]:
    return [np.full((images, 2, 2), i, dtype=np.float32) for i in range(count)]


async def _serve(batcher: Batcher, requests: list[np.ndarray]) -> list:
    batcher.start()
    answers = await asyncio.gather(*(batcher.submit(x) for x in requests), return_exceptions=True)
    await batcher.stop()
    return answers


def test_requests_are_merged_up_to_max_batch_and_each_gets_its_own_rows():
    model = Model()
    requests = _requests(12)
    answers = asyncio.run(_serve(Batcher(model, max_batch=4, max_delay=0.05, max_queue=64), requests))
    for x, answer in zip(requests, answers, strict=True):
        assert answer.shape == (1, 1) and answer[0, 0] == x.sum()
    assert sum(model.calls) == 12 and max(model.calls) == 4 and len(model.calls) < 12


def test_max_batch_1_is_one_call_per_request_and_a_big_request_runs_alone():
    model = Model()
    asyncio.run(_serve(Batcher(model, max_batch=1, max_delay=0.05, max_queue=64), _requests(5)))
    assert model.calls == [1] * 5
    model = Model()
    big = np.ones((6, 2, 2), dtype=np.float32)
    [answer] = asyncio.run(_serve(Batcher(model, max_batch=4, max_delay=0.01, max_queue=64), [big]))
    assert model.calls == [6] and answer.shape == (6, 1)


def test_a_failing_batch_fails_only_the_request_that_breaks_it_and_the_batcher_goes_on():
    model = Model(fail_on=3.0)
    seen: list[tuple[int, float]] = []
    batcher = Batcher(model, max_batch=4, max_delay=0.05, max_queue=64, observe=lambda n, s: seen.append((n, s)))
    answers = asyncio.run(_serve(batcher, _requests(8)))
    failed = [i for i, a in enumerate(answers) if isinstance(a, RuntimeError)]
    assert failed == [3]  # its batch-mates were run again alone and answered
    assert all(a[0, 0] == 4 * i for i, a in enumerate(answers) if i != 3)
    assert max(model.calls) > 1 and model.calls.count(1) >= 4  # a merged call failed, then one call each
    assert [n for n, _ in seen] == model.calls and all(s >= 0.01 for _, s in seen)
    assert batcher.stats.queued_images == 0


def test_a_full_queue_refuses_at_once_with_503():
    async def scenario():
        batcher = Batcher(Model(), max_batch=1, max_delay=0.0, max_queue=3)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit(x)) for x in _requests(3)]
        await asyncio.sleep(0)  # the three are queued
        with pytest.raises(QueueFull) as info:
            await batcher.submit(_requests(1)[0])
        assert info.value.status == 503 and "limit 3" in str(info.value)
        done = await asyncio.gather(*pending)
        await batcher.stop()
        return done, batcher.stats

    done, stats = asyncio.run(scenario())
    assert len(done) == 3 and stats.queued_images == 0 and stats.batches == {1: 3}


def test_a_lone_request_never_waits_and_a_batch_waits_only_for_a_request_on_its_way():
    async def scenario():
        model = Model()
        batcher = Batcher(model, max_batch=8, max_delay=5.0, max_queue=64)
        batcher.start()
        started = time.perf_counter()
        await batcher.submit(_requests(1)[0])
        alone = time.perf_counter() - started  # nothing else arriving: no 5 s wait
        with batcher.arriving():  # a second request is being read
            first = asyncio.ensure_future(batcher.submit(_requests(1)[0]))
            await asyncio.sleep(0.2)
            waited = not first.done()  # the batch holds the first while the second arrives
            second = batcher.submit(_requests(2)[1])
        await asyncio.gather(first, second)
        await batcher.stop()
        return alone, waited, model.calls

    alone, waited, calls = asyncio.run(scenario())
    assert alone < 1.0 and waited and calls == [1, 2]


def test_short_calls_run_on_the_event_loop_and_long_ones_in_a_worker_thread(monkeypatch):
    import threading

    import edgecnn.serve.batching as batching

    now = [0.0]  # the batcher's clock, moved by the model alone: the choice, not this machine's load, is tested
    monkeypatch.setattr(batching.time, "perf_counter", lambda: now[0])

    def threads_of(delay: float) -> list[bool]:
        seen: list[bool] = []

        def model(x):
            seen.append(threading.current_thread() is threading.main_thread())
            now[0] += delay * len(x)
            return x.reshape(len(x), -1).sum(1, keepdims=True)

        async def scenario():
            batcher = Batcher(model, max_batch=1, max_delay=0.0, max_queue=8)
            batcher.start()
            for x in _requests(3):
                await batcher.submit(x)
            await batcher.stop()

        asyncio.run(scenario())
        return seen

    assert threads_of(0.0) == [False, True, True]  # the first call, of unknown length, goes to a thread
    assert threads_of(0.01) == [False, False, False]  # 10 ms per image: never on the loop
