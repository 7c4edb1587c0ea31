"""Forward hooks on the neurons' modules: registered for a block, removed after it.

A module is named by (layer type, layer) (`kneurons.vocab.LAYER_TYPES`). `forward_hooks` puts a
hook on each of a set of modules; `captured_outputs` keeps what they output. Used by activation
scoring, mean activations, the residue activation map and ablation
(`kneurons.evaluation.masking.ablated`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

import torch

from kneurons.model.classifier import EsmClassifier, get_module
from kneurons.vocab import UnitKey


@contextmanager
def forward_hooks(model: EsmClassifier, hooks: Mapping[UnitKey, Callable]) -> Iterator[None]:
    """Within the block, `hooks[module]` is a forward hook of that module (see
    `torch.nn.Module.register_forward_hook`; a hook that returns a tensor replaces the output)."""
    handles = []
    try:
        for (layer_type, layer), hook in hooks.items():
            module = get_module(model.encoder, layer_type, layer)
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def captured_outputs(
    model: EsmClassifier, modules: Iterable[UnitKey]
) -> Iterator[dict[UnitKey, torch.Tensor]]:
    """Within the block, every forward pass stores each module's output, detached, in the
    yielded dict (module -> (T, B, units), fair-esm's layout), replacing the previous pass's.

    The outputs are copies: fair-esm scales q_proj's output in place right after the hook runs.
    """
    captured: dict[UnitKey, torch.Tensor] = {}

    def capture(key):
        def hook(_module, _inputs, output):
            captured[key] = output.detach().clone()

        return hook

    with forward_hooks(model, {key: capture(key) for key in modules}):
        yield captured
