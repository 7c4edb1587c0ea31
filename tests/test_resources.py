"""kneurons.model.resources: a GPU job's estimated memory and its share of the GPU."""

import pytest

from kneurons.model.resources import gpu_memory_mb, gpu_percent, parameters
from kneurons.model.spec import Architecture

ESM2_8M = Architecture(6, 320, 20)
ESM2_650M = Architecture(33, 1280, 20)


def test_parameters_match_the_published_esm2_sizes():
    # fair-esm's ESM-2 8M and 650M have 7.5M and 651M parameters (with the LM head's output
    # projection, tied to the embedding here)
    assert parameters(ESM2_8M) == pytest.approx(7.5e6, rel=0.03)
    assert parameters(ESM2_650M) == pytest.approx(651e6, rel=0.02)


def test_memory_grows_with_tokens_and_the_kind_of_pass():
    forward = gpu_memory_mb(ESM2_8M, "forward", 4096)
    assert forward < gpu_memory_mb(ESM2_8M, "forward", 16384)
    # a backward keeps every layer's activations: more than a forward for a deeper model, and
    # fine-tuning (fair-esm's attention, Adam) more than gradient scoring
    assert gpu_memory_mb(ESM2_650M, "forward", 4096) < gpu_memory_mb(ESM2_650M, "gradient", 4096)
    assert gpu_memory_mb(ESM2_8M, "gradient", 4096) < gpu_memory_mb(ESM2_8M, "train", 4096)
    # the 8M shape's IG pass: ~30 KB per token and layer measured on CPU, times the margin
    per_token_layer = (
        (gpu_memory_mb(ESM2_8M, "gradient", 8192) - gpu_memory_mb(ESM2_8M, "gradient", 0))
        * 2**20
        / (8192 * 6)
    )
    assert 30_000 <= per_token_layer <= 60_000
    with pytest.raises(ValueError, match="unknown job kind 'backward'"):
        gpu_memory_mb(ESM2_8M, "backward", 10)


def test_share_of_the_gpu():
    assert gpu_percent(ESM2_8M, "forward", 16384, None) == 100  # unknown GPU: the whole GPU
    small = gpu_percent(ESM2_8M, "forward", 16384, 80)
    assert 1 <= small <= 10  # a dozen such evaluations fit on an 80 GB card
    assert gpu_percent(ESM2_8M, "forward", 16384, 16) > small  # a smaller card: a larger share
    assert gpu_percent(ESM2_650M, "train", 8192, 80) == 100  # more than the card: all of it
    assert gpu_percent(Architecture(2, 32, 4), "forward", 1, 1000) == 1  # never 0
    with pytest.raises(ValueError, match="gpu_memory_gb must be > 0"):
        gpu_percent(ESM2_8M, "forward", 1, 0)


def test_auto_pass_size_is_the_cpu_size_on_a_cpu_and_a_number_is_kept():
    import torch

    from kneurons.model.resources import CPU_PASS_TOKENS, pass_tokens, planned_tokens

    cpu = torch.device("cpu")
    assert pass_tokens("auto", cpu, ESM2_8M) == CPU_PASS_TOKENS == 4096
    assert pass_tokens(16384, cpu, ESM2_8M) == 16384
    # what a GPU job's share is estimated for: the most `auto` picks there
    assert planned_tokens("auto") == 16384 and planned_tokens(2048) == 2048


def test_auto_pass_size_on_a_gpu_shrinks_to_half_the_free_memory(monkeypatch):
    import torch

    from kneurons.model.resources import pass_tokens

    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (80 * 2**30, 80 * 2**30))
    assert pass_tokens("auto", cuda, ESM2_650M) == 16384
    # 2 GB free: halved until the estimate fits in 1 GB
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * 2**30, 2 * 2**30))
    tokens = pass_tokens("auto", cuda, ESM2_8M)
    assert tokens < 16384 and gpu_memory_mb(ESM2_8M, "forward", tokens) * 2**20 <= 2**30
    assert gpu_memory_mb(ESM2_8M, "forward", 2 * tokens) * 2**20 > 2**30
