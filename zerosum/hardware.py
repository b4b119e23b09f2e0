"""Hardware-dependent choices made at run time from what torch reports, never assumed.

bf16 pays only where the hardware multiplies bf16 natively: CUDA devices that support it, and
CPUs with AVX512-BF16 or AMX. Elsewhere (e.g. AVX-512 Xeons without AVX512-BF16) torch
emulates bf16 matrix multiplies, measured about 5x slower than fp32 (BENCHMARKS.md).
"""

from __future__ import annotations

import platform

import torch


def cpu_model() -> str:
    """The CPU's model name as Linux reports it (benchmarks print it beside their figures)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether `device` multiplies bf16 natively, with the reason in a few words."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, f"{torch.cuda.get_device_name(device)} {'supports' if ok else 'lacks'} bf16"
    if device.type != "cpu":
        return False, f"no bf16 check for device type {device.type!r}"
    if torch.cpu._is_amx_tile_supported():
        return True, "CPU has AMX"
    if torch.cpu._is_avx512_bf16_supported():
        return True, "CPU has AVX512-BF16"
    return False, "CPU lacks AVX512-BF16 and AMX (bf16 would be emulated, slower than fp32)"


def resolve_bf16(setting: bool | str, device: torch.device) -> tuple[bool, str]:
    """`optim.bf16`: true, false, or "auto" (bf16 autocast only where it is native)."""
    if setting == "auto":
        ok, why = native_bf16(device)
        return ok, f"auto: {why}"
    return bool(setting), "set in the config"


def peak_rss_gib() -> float | None:
    """This process's resident-set high-water mark in GiB (Linux's VmHWM), None where the
    kernel does not report it. Not `getrusage`'s ru_maxrss: Linux carries that over fork and
    exec, so a run started from a large process (a test runner) would report its peak."""
    return proc_status_gib("VmHWM")


def proc_status_gib(field: str) -> float | None:
    """A memory field of /proc/self/status (VmHWM, VmRSS, ...) in GiB; None where the kernel
    does not report it."""
    try:
        with open("/proc/self/status") as f:
            kib = next((int(ln.split()[1]) for ln in f if ln.startswith(f"{field}:")), None)
    except OSError:
        return None
    return None if kib is None else kib / 2**20


def on_gpu(model) -> bool:
    """Whether `model`'s weights are on a CUDA GPU."""
    return next(model.parameters()).device.type == "cuda"


def gpu_peak_gib() -> float:
    """The most this process's tensors have held on its GPU so far (torch's allocator)."""
    return torch.cuda.max_memory_allocated() / 2**30


def memory_metrics(model) -> dict[str, float]:
    """`perf/` memory high-water marks: this process's resident set where the kernel reports
    it, and its GPU tensors when `model` is on a GPU."""
    metrics = {}
    if (rss := peak_rss_gib()) is not None:
        metrics["perf/peak_rss_gib"] = rss
    if on_gpu(model):
        metrics["perf/gpu_peak_gib"] = gpu_peak_gib()
    return metrics
