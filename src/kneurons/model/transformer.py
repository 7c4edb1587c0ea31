"""fair-esm's transformer layers, batch first, for the IG engine (`kneurons.scoring.integrals`)
and masked evaluation (`kneurons.evaluation.masked`: module outputs edited inside the layer).

`BatchFirstLayers` computes what fair-esm's `TransformerLayer.forward` computes (pre-LN attention
with rotary q/k, pre-LN GELU FFN), with the same modules and weights, but:
- batch first: x (B, T, E), heads (B, H, T, D), instead of fair-esm's (T, B, E);
- q, k and v as one matmul (the weights are concatenated once: they must stay frozen);
- fused attention (`scaled_dot_product_attention`) instead of fair-esm's bmm/softmax and its
  per-head attention-weight averaging. fair-esm scales q by head_dim**-0.5 right after q_proj,
  which is SDPA's default scale here;
- the rotary cos/sin tables are cached per (layer, length, device, dtype);
- any layer can resume from a cached intermediate (`cache`, `resume`): rows that change one
  module's output recompute only what lies above it in that layer.

A key mask is (B or 1, 1, 1, T), True at real tokens (`key_mask`), or None without padding.
`tests/test_transformer.py` checks the layers against fair-esm's own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from esm.model.esm2 import ESM2

from kneurons.vocab import NEURON_TYPES


def key_mask(padding: torch.Tensor | None) -> torch.Tensor | None:
    """(B, T) True at padding -> (B, 1, 1, T) True at real tokens (SDPA's boolean mask)."""
    return None if padding is None else (~padding)[:, None, None, :]


class BatchFirstLayers:
    """The encoder's layers run batch first, with q/k/v as one matmul (the weights are frozen).

    `forward(index, x, mask)` is layer `index`; `cache` keeps every intermediate of a layer and
    `resume` runs the rest of the layer from one module's (replaced) output.
    """

    def __init__(self, encoder: ESM2):
        self.layers = encoder.layers
        self.heads = encoder.attention_heads
        self.qkv = []
        for layer in self.layers:
            attn = layer.self_attn
            projections = (attn.q_proj, attn.k_proj, attn.v_proj)
            weight = torch.cat([p.weight.detach() for p in projections])
            bias = torch.cat([p.bias.detach() for p in projections])
            self.qkv.append((weight, bias))
        self.tables: dict = {}

    def __len__(self) -> int:
        return len(self.layers)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, E) -> heads (B, H, T, D)."""
        b, t, e = x.shape
        return x.view(b, t, self.heads, e // self.heads).transpose(1, 2)

    def rotate(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """fair-esm's rotary embedding of (B, T, E) projections, returned as heads."""
        x = self.split(x)
        length = x.shape[-2]
        key = (index, length, x.device, x.dtype)
        if key not in self.tables:
            inv_freq = self.layers[index].self_attn.rot_emb.inv_freq.to(x.device)
            t = torch.arange(length, device=x.device).type_as(inv_freq)
            freqs = torch.einsum("i,j->ij", t, inv_freq)  # fair-esm repeats it for both halves
            self.tables[key] = (freqs.cos().to(x.dtype), freqs.sin().to(x.dtype))
        cos, sin = self.tables[key]
        # x * cat(cos, cos) + cat(-x2, x1) * cat(sin, sin), written on the two halves
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat(
            (torch.addcmul(x1 * cos, x2, sin, value=-1.0), torch.addcmul(x2 * cos, x1, sin)),
            dim=-1,
        )

    def project(self, index: int, x: torch.Tensor):
        """Layer norm and the q, k, v projections of the attention block."""
        h = self.layers[index].self_attn_layer_norm(x)
        return F.linear(h, *self.qkv[index]).chunk(3, dim=-1)

    def attend(self, index: int, q_heads, k_heads, v, mask) -> torch.Tensor:
        """out_proj(attention) from rotated q/k heads and v (B, T, E)."""
        out = F.scaled_dot_product_attention(q_heads, k_heads, self.split(v), attn_mask=mask)
        b, _, t, _ = out.shape
        return self.layers[index].self_attn.out_proj(out.transpose(1, 2).reshape(b, t, -1))

    def ffn(self, index: int, y: torch.Tensor) -> torch.Tensor:
        """The residual FFN block: y + fc2(GELU(fc1(LN(y))))."""
        layer = self.layers[index]
        return y + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(y))))

    def forward(self, index: int, x: torch.Tensor, mask, edits=None) -> torch.Tensor:
        """Layer `index` on x (B, T, E). `edits` (optional): layer type -> a function applied to
        that module's output (B, T, units) before the layer goes on with it, as a forward hook
        on fair-esm's module would (a unit mask: `kneurons.evaluation.masked.predict_masked`)."""
        if edits:
            return self._edited(index, x, mask, edits)
        q, k, v = self.project(index, x)
        o = self.attend(index, self.rotate(index, q), self.rotate(index, k), v, mask)
        return self.ffn(index, x + o)

    def _edited(self, index: int, x: torch.Tensor, mask, edits) -> torch.Tensor:
        def edit(layer_type, output):
            return edits[layer_type](output) if layer_type in edits else output

        layer = self.layers[index]
        q, k, v = self.project(index, x)
        q, k, v = edit("query", q), edit("key", k), edit("value", v)
        o = self.attend(index, self.rotate(index, q), self.rotate(index, k), v, mask)
        y = x + edit("attn_out", o)
        f = edit("ffn_in", layer.fc1(layer.final_layer_norm(y)))
        return y + edit("ffn_out", layer.fc2(F.gelu(f)))

    __call__ = forward

    def cache(self, index: int, x: torch.Tensor, mask) -> dict[str, torch.Tensor]:
        """Every intermediate of one layer that some module's rows resume from: the layer input
        `x`, `y` = x + attention, the rotated `q_heads`/`k_heads`, and the output of every layer
        type's module under its layer-type name (B, T, units)."""
        layer = self.layers[index]
        q, k, v = self.project(index, x)
        q_heads, k_heads = self.rotate(index, q), self.rotate(index, k)
        o = self.attend(index, q_heads, k_heads, v, mask)
        y = x + o
        f = layer.fc1(layer.final_layer_norm(y))
        g = layer.fc2(F.gelu(f))
        return {"x": x, "y": y, "q_heads": q_heads, "k_heads": k_heads} | dict(
            zip(NEURON_TYPES, (q, k, v, o, f, g), strict=True)
        )

    def resume(
        self, index, cache, layer_type, b: int, output, mask, key_output=None
    ) -> torch.Tensor:
        """Layer `index`'s output for n rows of example `b` (row b of the cache) whose module
        `layer_type` outputs `output` (n, T, units); everything before it comes from the cache.
        With `key_output` (n, T, units) and layer type query, the rows' key projection is that
        instead of the cached one (a tensor the caller differentiates against)."""
        n = output.shape[0]

        def cached(name):
            value = cache[name][b : b + 1]
            return value.expand(n, *value.shape[1:])

        if layer_type in ("query", "key", "value"):
            q = self.rotate(index, output) if layer_type == "query" else cached("q_heads")
            k = self.rotate(index, output) if layer_type == "key" else cached("k_heads")
            if key_output is not None and layer_type == "query":
                k = self.rotate(index, key_output)
            v = output if layer_type == "value" else cached("value")
            return self.ffn(index, cache["x"][b] + self.attend(index, q, k, v, mask))
        if layer_type == "attn_out":
            return self.ffn(index, cache["x"][b] + output)
        if layer_type == "ffn_in":
            return cache["y"][b] + self.layers[index].fc2(F.gelu(output))
        if layer_type == "ffn_out":
            return cache["y"][b] + output
        raise ValueError(f"unknown layer type {layer_type!r}")
