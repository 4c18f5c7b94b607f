"""Latency and throughput of a model on this machine, measured the same way for every variant.

Batch 1 on one thread is the per-face latency the source document's "< 6 ms per face" means; throughput uses a
batch of 32 on all threads. Timings are medians over many runs after a warm-up, and denormals are flushed
(untrained or quantized weights can otherwise hit slow paths that say nothing about the model).
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_calls(call: Callable[[], object], runs: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        call()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        call()
        times[i] = time.perf_counter() - start
    return times * 1000.0


def torch_latency(model: torch.nn.Module, input_size: int, runs: int = 200, warmup: int = 20,
                  throughput_batch: int = 32, threads_for_throughput: int = 2, views: int = 1) -> dict:
    """Milliseconds per face (one call on `views` crops of it: 2 when its mirror image is averaged in) and
    faces per second in batches."""
    model.eval()
    previous = torch.get_num_threads()
    torch.set_flush_denormal(True)
    one = torch.randn(views, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    batch = torch.randn(throughput_batch * views, 3, input_size, input_size, generator=torch.Generator().manual_seed(1))
    try:
        with torch.inference_mode():
            torch.set_num_threads(1)
            single = time_calls(lambda: model(one), runs, warmup)
            torch.set_num_threads(threads_for_throughput)
            batched = time_calls(lambda: model(batch), max(10, runs // 10), max(2, warmup // 5))
    finally:
        torch.set_num_threads(previous)
    return {**_figures(single, batched, throughput_batch, threads_for_throughput), "views_per_face": views}


def onnx_latency(path: str | Path, input_size: int, runs: int = 200, warmup: int = 20, throughput_batch: int = 32,
                 threads_for_throughput: int = 2, views: int = 1) -> dict:
    """As torch_latency, for an ONNX Runtime session."""
    from faceocc.onnx_models import session

    rng = np.random.default_rng(0)
    one = rng.standard_normal((views, 3, input_size, input_size), dtype=np.float32)
    batch = rng.standard_normal((throughput_batch * views, 3, input_size, input_size), dtype=np.float32)
    single_session, multi_session = session(path, 1), session(path, threads_for_throughput)
    single = time_calls(lambda: single_session.run(None, {"input": one}), runs, warmup)
    batched = time_calls(lambda: multi_session.run(None, {"input": batch}), max(10, runs // 10), max(2, warmup // 5))
    return {**_figures(single, batched, throughput_batch, threads_for_throughput), "views_per_face": views}


def _figures(single_ms: np.ndarray, batched_ms: np.ndarray, batch: int, threads: int) -> dict:
    return {"latency_ms_p50": round(float(np.median(single_ms)), 3),
            "latency_ms_p90": round(float(np.percentile(single_ms, 90)), 3), "latency_runs": len(single_ms),
            "throughput_images_per_s": round(float(batch / (np.median(batched_ms) / 1000.0)), 1),
            "throughput_batch": batch, "throughput_threads": threads}


def interleaved_latency(calls: dict[str, Callable[[], object]], runs: int = 100, warmup: int = 10,
                        rounds: int = 5) -> dict[str, float]:
    """Median milliseconds per call for several variants timed in turns within one process, so that a slow
    patch of a noisy machine hits all of them alike; their ratios are what to compare."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[np.ndarray]] = {name: [] for name in calls}
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for name, call in calls.items():
            samples[name].append(time_calls(call, per_round, 0))
    return {name: round(float(np.median(np.concatenate(s))), 3) for name, s in samples.items()}
