"""The arithmetic of an IG sweep for benchmarks/bench_scoring.py: matmul FLOPs per row, per
sweep (from a run's nodes and panels), and of captum's `LayerIntegratedGradients`. Multiply-add =
2 FLOPs; E the model's width, H its FFN width, T tokens. Checked against
`torch.utils.flop_counter.FlopCounterMode` for the linear layers (exactly equal); the attention
products, which that counter leaves out on a CPU, are added by hand."""

from __future__ import annotations

import pandas as pd

from kneurons.model.classifier import EsmClassifier


def _widths(model: EsmClassifier) -> tuple[int, int]:
    return model.encoder.embed_dim, model.encoder.layers[0].fc1.out_features


def _layer(e: int, h: int, t: int) -> tuple[int, int]:
    """Matmul FLOPs per token of one whole layer: forward (q, k, v and out projections 8E^2,
    attention 4TE, FFN 4EH) and the input gradients (backward; attention 8TE)."""
    return 8 * e * e + 4 * t * e + 4 * e * h, 8 * e * e + 8 * t * e + 4 * e * h


def useful_flops(model: EsmClassifier, lengths, modules, steps: int) -> float:
    """Model FLOPs that exact per-module IG needs: for every (example, module at layer l) and
    every step, layers l..L-1 forward and backward to the module's output (input gradients only;
    the parameters are frozen), whole layers (`_layer`)."""
    (e, h), num_layers = _widths(model), model.num_layers
    total = 0.0
    for t in lengths:
        per_token_layer = sum(_layer(e, h, t))
        for _, layer in modules:
            total += steps * t * (num_layers - layer) * per_token_layer
    return total


def _after_module(e: int, h: int, t: int, layer_type: str, shared: bool = False):
    """Matmul FLOPs per token of what follows module `layer_type` inside its own layer: forward,
    and the input gradients back to the module (backward). Multiply-add = 2 FLOPs; E width, H FFN
    width, T tokens; attention scores 2TE and weighted sum 2TE forward; backward through the
    attention 2TE per operand gradient (dP, then dQ, dK or dV). `shared`: a query row that also
    gives the key's gradient (dK: 2TE more)."""
    ffn = 4 * e * h  # fc1 + fc2
    if layer_type in ("query", "key"):
        return 4 * t * e + 2 * e * e + ffn, (6 if shared else 4) * t * e + 2 * e * e + ffn
    if layer_type == "value":  # P fixed: P V, and dV = P^T dO
        return 2 * t * e + 2 * e * e + ffn, 2 * t * e + 2 * e * e + ffn
    return {"attn_out": (ffn, ffn), "ffn_in": (2 * e * h, 2 * e * h), "ffn_out": (0, 0)}[layer_type]


def row_flops(model: EsmClassifier, t: int, layer_type: str, layer: int, shared=False) -> float:
    """Matmul FLOPs of one IG row (one example of `t` tokens, one node) scaling module
    (layer_type, layer): the rest of its layer and the layers above forward, and the input
    gradients back to the module; the parameters are frozen, so no weight gradients. The
    least any engine computes per node (prefix cached; the classification head is left out)."""
    e, h = _widths(model)
    forward, backward = _after_module(e, h, t, layer_type, shared)
    above = model.num_layers - 1 - layer
    return t * (forward + backward + above * sum(_layer(e, h, t)))


def sweep_flops(model: EsmClassifier, lengths, gaps: pd.DataFrame, shared: bool) -> dict:
    """The arithmetic of an adaptive sweep from its `gaps` (one row per (example, module): the
    nodes and panels it ended with). `final`: the nodes of the final panels only, as if the rule
    had known where to refine (the floor at that accuracy); `evaluated`: every node the rule
    computed, the halved panels' included (a refined panel is replaced by two of the same node
    count: panels p leave nodes x (2p - 1) / p evaluated). `shared`: a layer's query and key
    count once, by the larger of the two (a lower bound on the shared rows)."""
    out = {"final": 0.0, "evaluated": 0.0}
    frame = gaps.assign(t=[lengths[e] for e in gaps["example"]])
    frame["evaluated"] = frame["steps"] * (2 * frame["panels"] - 1) / frame["panels"]
    for kind, column in (("final", "steps"), ("evaluated", "evaluated")):
        for (_, layer), rows in frame.groupby(["example", "layer"]):
            nodes = dict(zip(rows["layer_type"], rows[column], strict=True))
            t = int(rows["t"].iloc[0])
            if shared and "query" in nodes and "key" in nodes:
                pair = max(nodes.pop("query"), nodes.pop("key"))
                out[kind] += pair * row_flops(model, t, "query", layer, shared=True)
            for layer_type, n in nodes.items():
                out[kind] += n * row_flops(model, t, layer_type, layer)
    return out


def captum_flops(model: EsmClassifier, lengths, modules, steps: int) -> float:
    """The matmul FLOPs captum's LayerIntegratedGradients computes: per (example, module) and
    step, the whole network forward and the input gradients back to the module."""
    e, h = _widths(model)
    total = 0.0
    for t in lengths:
        full_forward = t * _layer(e, h, t)[0]
        for layer_type, layer in modules:
            # the layers below, and layer l up to the module's output, forward; then a row
            before = (layer + 1) * full_forward - t * _after_module(e, h, t, layer_type)[0]
            total += steps * (before + row_flops(model, t, layer_type, layer))
    return total
