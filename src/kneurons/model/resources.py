"""How much of one GPU a job claims, so that several small jobs can share it (rules/common.smk).

With `device: cuda` every GPU rule declares the resource `gpu_percent`, and the local profile
(profiles/default) caps its sum at 100: jobs run side by side on the GPU while their shares fit.
Without `gpu_memory_gb` in the config each GPU job claims 100 (one at a time, the safe default).
With it, a job claims its estimated peak memory as a percentage of that memory, rounded up.

The estimate is deliberately generous (a job that runs out of GPU memory fails; one that claims
too much only waits): the CUDA context, the weights (and for fine-tuning their gradients and two
Adam moments), and the activations of one pass of `max_tokens` padded tokens:
- backward passes keep every layer's activations: ~96 bytes per token, layer and unit of the
  embedding width (measured ~30 KB per token and layer for the 8M shape, width 320, on CPU in
  fp32); fine-tuning runs fair-esm's attention, which also keeps each layer's attention
  probabilities (heads x row length per token, scores and softmax, 8 bytes each), the row length
  taken as min(max_tokens, 1024) (ESM-2's context);
- gradient scoring runs this project's fused attention (`kneurons.model.transformer`): no score
matrix;
- forward-only passes (masked evaluation, activations, profiles) keep one layer alive at a time:
  ~64 bytes per token and embedding unit, plus that layer's attention probabilities.
It is an estimate, not a measurement: README ("Running on a GPU") says how to check it.

`pass_tokens` resolves the forward jobs' pass size `evaluation.max_tokens: auto` on the device
the job runs on.
"""

from __future__ import annotations

import math

from kneurons.model.spec import Architecture

CONTEXT_MB = 600  # CUDA context and allocator slack
MARGIN = 1.5
BACKWARD_BYTES = 96  # per token x layer x embedding unit, activations kept for the backward
FORWARD_BYTES = 64  # per token x embedding unit, one layer alive at a time
KINDS = ("train", "gradient", "forward")


def parameters(shape: Architecture, vocabulary: int = 33) -> int:
    """Encoder weights of an ESM-2 shape: 12 E^2 per layer (attention 4 E^2, FFN 8 E^2), the
    embedding and the LM head's dense layer (the classifier head is negligible)."""
    e = shape.embed_dim
    return shape.num_layers * (12 * e * e + 13 * e) + vocabulary * e + e * e


def gpu_memory_mb(shape: Architecture, kind: str, max_tokens: int) -> float:
    """Estimated peak GPU memory (MB) of a job of `kind` on a model of `shape` whose passes hold
    up to `max_tokens` padded tokens (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}; choose one of {', '.join(KINDS)}")
    weights = 4 * parameters(shape)
    if kind == "train":
        weights *= 4  # weights, gradients, Adam's two moments
    e, layers = shape.embed_dim, shape.num_layers
    attention = 8 * shape.attention_heads * min(max_tokens, 1024)  # bytes per token
    if kind == "forward":
        activations = max_tokens * (FORWARD_BYTES * e + attention)
    elif kind == "gradient":
        activations = max_tokens * layers * BACKWARD_BYTES * e
    else:
        activations = max_tokens * layers * (BACKWARD_BYTES * e + attention)
    return CONTEXT_MB + MARGIN * (weights + activations) / 2**20


def gpu_percent(
    shape: Architecture, kind: str, max_tokens: int, gpu_memory_gb: float | None
) -> int:
    """The job's share of the GPU, 1-100: its estimate over `gpu_memory_gb`, rounded up; 100
    when the GPU's memory is not given (one GPU job at a time)."""
    if gpu_memory_gb is None:
        return 100
    if gpu_memory_gb <= 0:
        raise ValueError(f"gpu_memory_gb must be > 0, got {gpu_memory_gb}")
    share = 100 * gpu_memory_mb(shape, kind, max_tokens) / (gpu_memory_gb * 1024)
    return max(1, min(100, math.ceil(share)))


AUTO = "auto"
# `evaluation.max_tokens: auto`. On a CPU, 4,096 padded tokens per pass: a 16,384-token pass runs
# 1.45x slower per residue there (benchmarks/bench_evaluation.py, 2 cores, 8M shape; the cache
# no longer holds a layer's activations). On a GPU, 16,384 (what the DAG's `gpu_percent` claims
# for `auto`), halved while its estimate exceeds half the free memory.
CPU_PASS_TOKENS = 4096
GPU_PASS_TOKENS = 16384


def planned_tokens(setting: int | str) -> int:
    """The pass size a DAG-time resource estimate assumes for a `max_tokens` setting."""
    return GPU_PASS_TOKENS if setting == AUTO else int(setting)


def pass_tokens(setting: int | str, device, shape: Architecture) -> int:
    """Padded tokens per pass of a forward job on `device` (a torch.device) for a model of
    `shape`: `setting` when it is a number; for `auto` see CPU_PASS_TOKENS / GPU_PASS_TOKENS.
    The result is the job's only pass size: it goes into its store keys and metadata, so
    `auto` and an explicit setting of the same size give the same results."""
    if setting != AUTO:
        return int(setting)
    if getattr(device, "type", str(device)) != "cuda":
        return CPU_PASS_TOKENS
    import torch  # only on a GPU: the rules import this module without torch

    free, _ = torch.cuda.mem_get_info(device)
    tokens = GPU_PASS_TOKENS
    while tokens > 1024 and gpu_memory_mb(shape, "forward", tokens) * 2**20 > free / 2:
        tokens //= 2
    return tokens
