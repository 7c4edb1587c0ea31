"""Sparse autoencoders whose latents are units (kneurons.sae): training recovers a known sparse
dictionary, the splice keeps the model exact, a mismatched SAE is refused, IG through latents
meets the accuracy policy, and the latent targets run through the real Snakefile, cached."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from workflow_helpers import REPO, run_snakemake, write_config

from kneurons.errors import ModelError
from kneurons.evaluation.masked import predict_masked
from kneurons.evaluation.masking import ablated
from kneurons.model.batching import tokenize
from kneurons.model.classifier import EsmClassifier, alphabet, build_random, get_module
from kneurons.model.predict import prepare_batches
from kneurons.model.spec import Architecture
from kneurons.sae import attach_saes, save_sae, spliced
from kneurons.sae.autoencoder import TopKSAE
from kneurons.sae.train import fidelity, site_activations, train_sae
from kneurons.scoring.hooked import hooked_panel_integrals
from kneurons.scoring.integrals import WHOLE, panel_integrals
from kneurons.scoring.methods import integrated_gradients_scores
from kneurons.scoring.quadrature import quadrature_rule

SHA = "a" * 64


def planted(n: int, width: int, atoms: int, active: int, seed: int):
    """Activations that are sparse sums of `atoms` unit directions (one dictionary for every
    seed), `active` of them per token with magnitudes in [1, 2]."""
    dictionary = torch.randn(atoms, width, generator=torch.Generator().manual_seed(99))
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    gen = torch.Generator().manual_seed(seed)
    codes = torch.zeros(n, atoms)
    index = torch.rand(n, atoms, generator=gen).argsort(1)[:, :active]
    codes.scatter_(1, index, 1.0 + torch.rand(n, active, generator=gen))
    return codes @ dictionary, dictionary


def test_a_topk_sae_recovers_a_planted_sparse_dictionary():
    train, dictionary = planted(30_000, 24, 48, 3, seed=0)
    val, _ = planted(3_000, 24, 48, 3, seed=1)
    trained = train_sae(train, val, expansion=4, k=3, epochs=30, lr=2e-3, batch_size=512, seed=0)
    decoder = trained.sae.W_dec.detach().T  # (latents, width), unit rows
    cosine = (dictionary @ decoder.T).max(1).values  # best latent per planted atom
    assert (cosine > 0.9).float().mean() >= 0.9, cosine
    stats = fidelity(trained.sae, val)
    assert stats["variance_explained"] > 0.9
    assert stats["mean_active"] <= 3


def test_training_is_deterministic():
    x, _ = planted(4_000, 16, 32, 2, seed=3)
    a = train_sae(x[:3000], x[3000:], expansion=2, k=2, epochs=3, seed=5)
    b = train_sae(x[:3000], x[3000:], expansion=2, k=2, epochs=3, seed=5)
    for key, value in a.sae.state_dict().items():
        assert torch.equal(value, b.sae.state_dict()[key]), key


@pytest.fixture(scope="module")
def spliced_model(tmp_path_factory):
    """A tiny classifier with an SAE on both sites of both layers (files in a temp dir)."""
    torch.manual_seed(0)
    model = EsmClassifier(build_random(Architecture(2, 32, 4)), 3).eval()
    rng = random.Random(0)
    sequences = [
        "".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(rng.randint(15, 40)))
        for _ in range(30)
    ]
    tokens = tokenize(alphabet(), sequences)
    folder = tmp_path_factory.mktemp("saes")
    paths = []
    for site in ("resid", "ffn"):
        for layer in (0, 1):
            acts = site_activations(model, tokens[:24], site, layer, "cpu")
            val = site_activations(model, tokens[24:], site, layer, "cpu")
            sae = train_sae(acts, val, expansion=1, k=4, epochs=2, seed=layer).sae
            path = folder / f"{site}{layer}.pt"
            save_sae(path, sae, {"checkpoint_sha256": SHA, "site": site, "layer": layer})
            paths.append(path)
    before = model(_batch(tokens[:6])).detach()
    sites = attach_saes(model, paths, SHA)
    return model, tokens, paths, sites, before


def _batch(tokens):
    from kneurons.model.batching import pad

    return pad(tokens, alphabet().padding_idx)


def test_splicing_without_a_mask_reproduces_the_logits_exactly(spliced_model):
    model, tokens, _, sites, before = spliced_model
    batch = _batch(tokens[:6])
    assert torch.equal(model(batch).detach(), before)
    keep_all = {key: torch.ones(get_module(model.encoder, *key).out_features) for key in sites}
    with ablated(model, keep_all):
        assert torch.equal(model(batch).detach(), before)
    batches = prepare_batches(tokens[:6], model.encoder.padding_idx, 4096)
    (masked,) = predict_masked(model, batches, [keep_all], torch.device("cpu"))
    assert torch.allclose(masked, before, atol=0, rtol=0)


def test_silencing_latents_removes_exactly_their_decoder_directions(spliced_model):
    model, tokens, _, sites, before = spliced_model
    batch = _batch(tokens[:6])
    key = ("sae_ffn", 1)
    site = sites[key]
    mask = torch.ones(site.sae.n_latents)
    mask[::2] = 0.0
    captured = {}

    def keep_input(_module, args):
        captured["x"] = args[0].detach().clone()

    layer = model.encoder.layers[1]
    handle = layer.fc1.register_forward_pre_hook(keep_input)  # unaffected by the site
    with ablated(model, {key: mask}):
        after = model(batch).detach()
    handle.remove()
    assert not torch.allclose(after, before)
    # by hand: fc2 input = h - W_dec (z * (1 - mask)) / scale, h = GELU(fc1(.))
    h = torch.nn.functional.gelu(layer.fc1(captured["x"]))
    z = site.sae.encode(h)
    expected_input = h + site.sae.latent_change(z * mask - z)
    seen = {}

    def keep_fc2_input(_module, args, _output):
        seen["in"] = args[0].detach().clone()

    handle = layer.fc2.register_forward_hook(keep_fc2_input)
    with ablated(model, {key: mask}):
        model(batch)
    handle.remove()
    assert torch.allclose(seen["in"], expected_input, atol=1e-5)
    with spliced([site], "zero"):
        zeroed = model(batch).detach()
    assert not torch.allclose(zeroed, before)


def test_a_mismatched_sae_is_refused_with_one_line(spliced_model, tmp_path):
    model, _, paths, _, _ = spliced_model
    fresh = EsmClassifier(build_random(Architecture(2, 32, 4)), 3).eval()
    with pytest.raises(ModelError, match="another model") as err:
        attach_saes(fresh, [paths[0]], "b" * 64)
    assert "\n" not in str(err.value)
    wide = TopKSAE(32, 16, 2)
    wrong_site = tmp_path / "wrong_site.pt"
    save_sae(wrong_site, wide, {"checkpoint_sha256": SHA, "site": "ffn", "layer": 0})
    with pytest.raises(ModelError, match="reads 32 values, site ffn has 128"):
        attach_saes(fresh, [wrong_site], SHA)
    far = tmp_path / "far.pt"
    save_sae(far, wide, {"checkpoint_sha256": SHA, "site": "resid", "layer": 5})
    with pytest.raises(ModelError, match="layer 5, the model has 2"):
        attach_saes(fresh, [far], SHA)
    with pytest.raises(ModelError, match="a second SAE"):
        attach_saes(fresh, [paths[0], paths[0]], SHA)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(paths[0].read_bytes()[:100])
    with pytest.raises(ModelError, match="unreadable SAE file"):
        attach_saes(fresh, [damaged], SHA)
    with pytest.raises(ModelError, match="no SAE spliced into layer 0 for sae_ffn"):
        get_module(fresh.encoder, "sae_ffn", 0)


def test_the_hooked_engine_equals_the_batch_first_engine_on_neurons(spliced_model):
    model, tokens, _, _, _ = spliced_model
    labels = [0, 1, 2, 0]
    alphas, weights = quadrature_rule("gausslegendre", 6)
    tasks = [
        ((e, (lt, layer)), WHOLE)
        for e in range(4)
        for lt in ("value", "attn_out", "ffn_in", "ffn_out")
        for layer in (0, 1)
    ]
    tasks += [((0, ("value", 1)), (0.0, 0.5)), ((0, ("value", 1)), (0.5, 1.0))]
    fast = panel_integrals(model, tokens, labels, tasks, alphas, weights, "cpu", 4096)
    hooked = hooked_panel_integrals(model, tokens, labels, tasks, alphas, weights, "cpu", 4096)
    scale = max(np.abs(v).max() for v in fast.values.values())
    for key, value in fast.values.items():
        np.testing.assert_allclose(hooked.values[key], value, atol=1e-6 * scale, rtol=0)
        assert hooked.f0[key] == pytest.approx(fast.f0[key], abs=1e-6)
    mask = {("ffn_in", 1): (torch.arange(128) % 3 == 0).float()}
    pairs = [((e, ("ffn_in", 1)), WHOLE) for e in range(2)]
    fast = panel_integrals(
        model, tokens, labels, pairs, alphas, weights, "cpu", 4096, masks=mask, per_token=True
    )
    hooked = hooked_panel_integrals(
        model, tokens, labels, pairs, alphas, weights, "cpu", 4096, masks=mask, per_token=True
    )
    for key, value in fast.values.items():
        assert hooked.values[key].shape == value.shape == (len(tokens[key[0][0]]), 128)
        np.testing.assert_allclose(hooked.values[key], value, atol=1e-6 * scale, rtol=0)


def test_ig_through_latents_is_complete_under_the_accuracy_policy(spliced_model):
    model, tokens, _, _, _ = spliced_model
    labels = [0, 1, 2, 0, 1, 2]
    result = integrated_gradients_scores(
        model, tokens[:6], labels, ["sae_resid", "sae_ffn"], device="cpu", steps=4,
        rtol=1e-3, atol=1e-6, max_steps=64,
    )  # fmt: skip
    gaps = result.gaps
    assert len(gaps) == 6 * 2 * 2
    assert result.info["n_above_tolerance"] == 0
    assert (gaps["gap"].abs() <= gaps["tolerance"]).all()
    assert result.scores[("sae_ffn", 1)].shape == (128,)


# ---------------------------------------------------------------------------------------------
# Through the Snakefile


@pytest.fixture(scope="module")
def sae_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sae_run")
    config = yaml.safe_load((REPO / "tests/config/tiny_sae.yaml").read_text())
    config["data"]["input"] = str(REPO / "tests/data/tiny_uniprot.tsv")
    path = write_config(workdir, config)
    run = run_snakemake(workdir, path)
    assert run.returncode == 0, run.stderr[-3000:]
    return workdir, path


def test_latent_targets_are_computed_flagged_and_cached(sae_run):
    workdir, config = sae_run
    run = workdir / "results/tiny_sae"
    fidelity_table = pd.read_parquet(run / "sae/tiny/fidelity.parquet")
    assert sorted(zip(fidelity_table["site"], fidelity_table["layer"], strict=True)) == [
        ("ffn", 0), ("ffn", 1), ("resid", 0), ("resid", 1)
    ]  # fmt: skip
    assert (fidelity_table["n_latents"] == [64, 64, 64, 64]).all()
    page = (run / "summary/tiny/sae_fidelity.md").read_text()
    assert "Flagged as poor" in page  # a 3-epoch SAE of a 2-layer model explains little
    scores = pd.read_parquet(run / "scores/tiny/integrated_gradients/sae_ffn/layer1.parquet")
    assert len(scores[scores["label"] == -1]) == 64
    evaluation = pd.read_parquet(
        run / "eval/tiny/zero/layer_type/random-0/sae_resid/keep10.parquet"
    )
    assert int(evaluation["n_total"][0]) == 128 and int(evaluation["n_kept"][0]) == 13
    # nothing to redo; a lost latent score file comes back from the store, not recomputed
    again = run_snakemake(workdir, config)
    assert "Nothing to be done" in again.stdout + again.stderr
    lost = run / "scores/tiny/integrated_gradients/sae_resid/layer0.parquet"
    kept = lost.read_bytes()
    lost.unlink()
    again = run_snakemake(workdir, config, str(lost.relative_to(workdir)))
    assert again.returncode == 0, again.stderr[-2000:]
    assert lost.read_bytes() == kept
    log = (workdir / "logs/tiny_sae/score_neurons/tiny/integrated_gradients/layer0.log").read_text()
    assert "from the store (scored before): ffn_in, key, sae_ffn, sae_resid" in log
    assert not list((workdir / "logs/tiny_sae").glob("train_sae/**/*.log.1"))


def test_the_summary_sets_latents_beside_neurons(sae_run):
    """summarize reads the fidelity table: the section, the poor SAEs named, `unit_kind`."""
    workdir, _ = sae_run
    summary = workdir / "results/tiny_sae/summary/tiny"
    page = (summary / "summary.md").read_text()
    section = page[page.index("## SAE latents beside neurons") :]
    assert "Flagged poor (4 of 4 SAEs)" in section
    assert "[sae_fidelity.md](sae_fidelity.md)" in section
    assert "| sae_resid (poor SAE) | latent |" in section and "| key | neuron |" in section
    assert "**Do SAE latents hold the task better than neurons" in page
    table = pd.read_parquet(summary / "masked_eval.parquet")
    kinds = table.dropna(subset=["unit_kind"]).groupby("target")["unit_kind"].first().to_dict()
    assert kinds == {"key": "neuron", "ffn_in": "neuron", "sae_resid": "latent",
                     "sae_ffn": "latent"}  # fmt: skip


def test_residue_maps_of_latent_selections_equal_each_selection_alone(spliced_model):
    """SAE latent layer types take the hooked engine in the batched IG maps too (variants hook
    their layer type's module): several selections in one run equal each alone, every
    (sequence, module, selection) integral judged by the accuracy policy."""
    from kneurons.residues.maps import (
        activation_map,
        activation_maps,
        ig_maps,
        ig_maps_of_selections,
    )

    model, tokens, _, _, _ = spliced_model
    tokens, labels = tokens[:4], [0, 1, 2, 0]
    for layer_type in ("sae_resid", "sae_ffn"):
        units = get_module(model.encoder, layer_type, 0).out_features
        selections = {
            f"s{seed}": {
                (layer_type, layer): (torch.rand(units, generator=torch.Generator().manual_seed(
                    seed + layer)) < 0.3).float()
                for layer in (0, 1)
            }
            for seed in (0, 10)
        }  # fmt: skip
        selections["copy"] = dict(selections["s0"])
        rule = {"steps": 4, "rtol": 1e-3, "atol": 1e-6, "max_steps": 64}
        together = ig_maps_of_selections(model, tokens, labels, selections, **rule)
        batched = activation_maps(model, tokens, selections)
        for name, masks in selections.items():
            maps, gaps = together[name]
            alone_maps, alone_gaps = ig_maps(model, tokens, labels, masks, **rule)
            assert gaps["layer_type"].eq(layer_type).all() and len(gaps) == 4 * 2
            assert not gaps["above_tolerance"].any()
            np.testing.assert_array_equal(gaps["panels"], alone_gaps["panels"])
            for e, (got, expected) in enumerate(zip(maps, alone_maps, strict=True)):
                np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
                alone = activation_map(model, tokens[e], masks)
                np.testing.assert_allclose(batched[name][e], alone, rtol=1e-5, atol=1e-6)
