"""Tokenising sequences and grouping them into length-sorted batches under a token budget."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch


def tokenize(alphabet, sequences: Sequence[str]) -> list[torch.Tensor]:
    """One 1-D LongTensor per sequence: BOS, residues, EOS (fair-esm's encoding)."""
    out = []
    for seq in sequences:
        ids = [alphabet.cls_idx, *alphabet.encode(seq), alphabet.eos_idx]
        out.append(torch.tensor(ids, dtype=torch.long))
    return out


def pad(tokens: Sequence[torch.Tensor], padding_idx: int) -> torch.Tensor:
    """Stack 1-D token tensors into (B, T), right-padded."""
    width = max(len(t) for t in tokens)
    batch = torch.full((len(tokens), width), padding_idx, dtype=torch.long)
    for i, t in enumerate(tokens):
        batch[i, : len(t)] = t
    return batch


def length_batches(
    lengths: Sequence[int],
    max_tokens: int,
    max_batch_size: int | None = None,
    shuffle_seed: int | None = None,
) -> list[list[int]]:
    """Indices grouped so that similar lengths share a batch (little padding).

    A batch holds at most `max_tokens` padded tokens (batch size x longest length) and at most
    `max_batch_size` items; one over-long item still gets a batch of its own. With
    `shuffle_seed`, the order of batches (not their content) is shuffled reproducibly.
    """
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for idx in order:
        n = int(lengths[idx])
        width = max(longest, n)
        full = current and (
            width * (len(current) + 1) > max_tokens
            or (max_batch_size is not None and len(current) >= max_batch_size)
        )
        if full:
            batches.append(current)
            current, width = [], n
        current.append(int(idx))
        longest = width
    if current:
        batches.append(current)
    if shuffle_seed is not None:
        rng = np.random.default_rng(shuffle_seed)
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def iter_batches(
    tokens: Sequence[torch.Tensor],
    padding_idx: int,
    max_tokens: int,
    max_batch_size: int | None = None,
    shuffle_seed: int | None = None,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Yield (indices, padded token batch) in length-sorted batches."""
    lengths = [len(t) for t in tokens]
    for idx in length_batches(lengths, max_tokens, max_batch_size, shuffle_seed):
        yield idx, pad([tokens[i] for i in idx], padding_idx)
