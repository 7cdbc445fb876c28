"""RMSNorm, rotary embedding and SwiGLU with hand-written backward passes.

Left to autograd, each is a chain of small elementwise ops that each read and write a whole
activation, and under bf16 autocast several of them mix dtypes (the slowest case on a CPU).
Written out, each needs fewer passes: RMSNorm keeps only its fp32 input and per-row scale;
the rotation keeps no activation at all (its backward is the rotation by the opposite angle);
SwiGLU writes both halves of its input gradient straight into one buffer instead of
concatenating them. All three are checked against autograd with torch.autograd.gradcheck in
float64 (tests/lab/test_fused.py).

Under torch.compile (train.compile=true) each function returns its plain formula instead: the
compiler derives the backward and fuses the elementwise chains itself, which beats the
hand-written passes (they are opaque to it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class RMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor | None, eps: float, out_dtype: torch.dtype):
        # Statistics in fp32 at least, whatever the input: a mean of squares underflows in bf16.
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        rstd = torch.linalg.vector_norm(xf, dim=-1, keepdim=True).square_().div_(x.shape[-1]).add_(eps).rsqrt_()
        ctx.save_for_backward(xf, weight, rstd)
        ctx.in_dtype = x.dtype
        if weight is None:  # the caller folds the gain into the next matmul's weight
            return torch.mul(xf, rstd, out=torch.empty(x.shape, dtype=out_dtype, device=x.device))
        return (xf * rstd).mul_(weight).to(out_dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        xf, weight, rstd = ctx.saved_tensors
        g = grad_out.to(xf.dtype)
        grad_weight = None
        if weight is not None:
            grad_weight = (g * xf).mul_(rstd).flatten(0, -2).sum(0).to(weight.dtype)
            g = g * weight
        # d/dx of x * rstd(x) = rstd * g - x * rstd^3 * mean(g * x), along the last dim.
        coef = (g * xf).mean(-1, keepdim=True).mul_(rstd.pow(3))
        grad_x = (g * rstd).addcmul_(xf, coef, value=-1.0)
        return grad_x.to(ctx.in_dtype), grad_weight, None, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float, out_dtype: torch.dtype) -> torch.Tensor:
    """weight * x / sqrt(mean(x^2) + eps) over the last dim (no weight: just the division),
    returned in out_dtype."""
    if torch.compiler.is_compiling():  # plain formula: the compiler fuses it (module docstring)
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        y = xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + eps)
        return (y if weight is None else y * weight).to(out_dtype)
    return RMSNormFunction.apply(x, weight, eps, out_dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, sign: float) -> torch.Tensor:
    # x * cos + swap_halves(x) * sin, where the sin table already carries rotate_half's minus
    # on its first half: two full-width passes and one copy, no per-half temporaries.
    half = x.shape[-1] // 2
    swapped = torch.cat((x[..., half:], x[..., :half]), dim=-1)
    return torch.addcmul(x * cos, swapped, sin, value=sign)


class RotaryFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin, 1.0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        cos, sin = ctx.saved_tensors
        # A rotation's transpose is the rotation by minus the angle.
        return _rotate(grad_out, cos, sin, -1.0), None, None


def rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., hd) by position in HF's half-split convention (rotate_half).

    cos: the (..., hd) table (cos, cos); sin: the signed table (-sin, sin); both broadcastable
    against x and in x's dtype (lab.model.RotaryEmbedding makes them)."""
    if torch.compiler.is_compiling():  # plain formula: the compiler fuses it (module docstring)
        return _rotate(x, cos, sin, 1.0)
    return RotaryFunction.apply(x, cos, sin)


class SwiGLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate_up: torch.Tensor):
        gate, up = gate_up.chunk(2, dim=-1)
        activated = F.silu(gate)
        ctx.save_for_backward(gate_up, activated)
        return activated * up

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        gate_up, activated = ctx.saved_tensors
        gate, up = gate_up.chunk(2, dim=-1)
        grad = torch.empty_like(gate_up)
        grad_gate, grad_up = grad.chunk(2, dim=-1)
        torch.mul(grad_out, activated, out=grad_up)
        torch.ops.aten.silu_backward.grad_input(grad_out * up, gate, grad_input=grad_gate)
        return grad


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up for gate_up = [gate | up] along the last dim (one matmul's output)."""
    if torch.compiler.is_compiling():  # plain formula: the compiler fuses it (module docstring)
        gate, up = gate_up.chunk(2, dim=-1)
        return F.silu(gate) * up
    return SwiGLUFunction.apply(gate_up)
