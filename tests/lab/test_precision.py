"""Precision is chosen from what the machine does natively, and a forced slow choice says so."""
import math

import pytest
import torch

from common.errors import ConfigError
from lab import precision


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_cpu_follows_native_bf16(native, expected, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    chosen = precision.choose("cpu", "auto")
    assert (chosen.device, chosen.dtype) == ("cpu", expected)
    assert chosen.torch_dtype == (torch.bfloat16 if native else torch.float32)


def test_forced_bf16_on_an_emulating_cpu_is_kept_and_flagged(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    chosen = precision.choose("cpu", "bf16")
    assert chosen.dtype == "bf16" and "lacks native bf16" in chosen.reason
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.choose("cpu", "bf16").reason == "set in the config"
    assert precision.choose("cpu", "fp32").reason == "set in the config"


def test_autocast_matches_the_choice():
    with precision.Precision("cpu", "bf16", "test").autocast():
        assert precision.active_compute_dtype("cpu", torch.float32) == torch.bfloat16
    with precision.Precision("cpu", "fp32", "test").autocast():
        assert precision.active_compute_dtype("cpu", torch.float32) == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_device_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        precision.choose("cuda", "auto")
    assert e.value.field == "train.device"


def test_mfu_peak_of_emulated_bf16_is_the_fp32_peak(monkeypatch):
    calls = []
    monkeypatch.setattr(precision, "_measured_matmul_peak", lambda dtype: calls.append(dtype) or 1.0)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    precision.peak_flops(precision.Precision("cpu", "bf16", "test"))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    precision.peak_flops(precision.Precision("cpu", "bf16", "test"))
    assert calls == [torch.float32, torch.bfloat16]


def test_gpu_peaks_match_the_most_specific_name():
    from lab.precision import gpu_peak_flops

    # Substring order once read "NVIDIA L40S" as an L4 (3x off) and an A10G as an A10.
    assert gpu_peak_flops("NVIDIA L40S", "bf16") == 362e12
    assert gpu_peak_flops("NVIDIA L4", "bf16") == 121e12
    assert gpu_peak_flops("NVIDIA A10G", "bf16") == 70e12
    assert gpu_peak_flops("NVIDIA H100 PCIe", "bf16") == 756e12
    assert gpu_peak_flops("NVIDIA H100 80GB HBM3", "bf16") == 989e12
    assert gpu_peak_flops("NVIDIA H200", "fp32") == 67e12  # plain fp32: TF32 is not enabled
    assert math.isnan(gpu_peak_flops("Some Future GPU", "bf16"))
