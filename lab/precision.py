"""Device and numeric precision, chosen once per run and recorded in final.json."""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache

import torch

# Dense peak throughput of common accelerators (FLOP/s) for MFU: (bf16 tensor cores, plain fp32;
# fp32 runs without TF32, which nothing here enables). Names are matched longest first, so
# "L40S" is not taken for "L4" nor "H100 PCIe" for the SXM part.
_GPU_PEAKS = {"H200": (989e12, 67e12), "H100": (989e12, 67e12), "H100 PCIe": (756e12, 51e12),
              "A100": (312e12, 19.5e12), "L40S": (362e12, 91.6e12), "L40": (181e12, 90.5e12),
              "L4": (121e12, 30.3e12), "A10G": (70e12, 31.2e12), "A10": (125e12, 31.2e12),
              "V100": (125e12, 15.7e12), "RTX 4090": (165e12, 82.6e12), "RTX 3090": (71e12, 35.6e12)}


@lru_cache(maxsize=1)  # a property of the machine; asked per attention call
def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 / AMX make bf16 matmuls several times faster than fp32 on a CPU. Without
    them bf16 is emulated: on a 2-core AVX2 EPYC a 2048^2 bf16 matmul ran at 0.3 GFLOP/s
    against 140 in fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def active_compute_dtype(device_type: str, default: torch.dtype) -> torch.dtype:
    """The dtype matmuls run in right now: autocast's where it is on, otherwise `default`."""
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return default


@dataclass(frozen=True)
class Precision:
    device: str  # "cpu" | "cuda"
    dtype: str  # "bf16" | "fp32"
    reason: str

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.dtype == "bf16" else torch.float32

    def autocast(self):
        """Weights stay fp32 (the optimizer's master copy); matmuls run in bf16 when chosen."""
        if self.dtype == "fp32":
            return nullcontext()
        return torch.autocast(device_type=self.device, dtype=torch.bfloat16)


def choose(device: str = "auto", precision: str = "auto") -> Precision:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from common.errors import ConfigError

        raise ConfigError("train.device", "cuda was asked for but torch sees no CUDA device")
    if precision != "auto":
        if device == "cpu" and precision == "bf16" and not cpu_has_native_bf16():
            return Precision(device, precision, "set in the config; this CPU lacks native bf16, "
                                                "so its matmuls are emulated and far slower than fp32")
        return Precision(device, precision, "set in the config")
    if device == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return Precision(device, "bf16" if ok else "fp32",
                         "GPU supports bf16" if ok else "GPU lacks bf16")
    if cpu_has_native_bf16():
        return Precision(device, "bf16", "CPU has native bf16 (avx512_bf16/amx)")
    return Precision(device, "fp32", "CPU lacks native bf16")


@lru_cache(maxsize=None)
def _measured_matmul_peak(dtype: torch.dtype) -> float:
    """FLOP/s of a large matmul on this CPU (the practical peak MFU is measured against)."""
    n = 1024
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm up
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.2:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - start)


def gpu_peak_flops(device_name: str, dtype: str) -> float:
    """The listed dense peak of a GPU by its name (NaN for one not listed: MFU unknown)."""
    for key in sorted(_GPU_PEAKS, key=len, reverse=True):
        if key in device_name:
            bf16, fp32 = _GPU_PEAKS[key]
            return bf16 if dtype == "bf16" else fp32
    return float("nan")


def peak_flops(p: Precision) -> float:
    if p.device == "cuda":
        return gpu_peak_flops(torch.cuda.get_device_name(), p.dtype)
    if p.dtype == "bf16" and not cpu_has_native_bf16():
        # Emulated bf16 has no peak of its own (a large bf16 matmul crawls while small ones
        # convert to fp32): the fp32 units are the hardware's ceiling, so MFU is against them.
        return _measured_matmul_peak(torch.float32)
    return _measured_matmul_peak(p.torch_dtype)
