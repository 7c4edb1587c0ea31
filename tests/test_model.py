import argparse

import pytest
import torch

from kneurons.errors import ModelError
from kneurons.model.batching import pad
from kneurons.model.classifier import (
    EsmClassifier,
    build_encoder,
    build_random,
    load_classifier,
    load_fair_esm_file,
    save_classifier,
)
from kneurons.model.spec import Architecture, ModelSpec, num_layers_of


def write_fair_esm_file(path, encoder):
    """A checkpoint laid out as fair-esm's hub files are: prefixed weights + Namespace cfg."""
    cfg = argparse.Namespace(
        encoder_layers=encoder.num_layers,
        encoder_embed_dim=encoder.embed_dim,
        encoder_attention_heads=encoder.attention_heads,
        token_dropout=True,
    )
    state = {
        f"encoder.sentence_encoder.{k}": v
        for k, v in encoder.state_dict().items()
        if not k.startswith("contact_head.regression")
    }
    torch.save({"model": state, "cfg": {"model": cfg}}, path)


def test_forward_matches_fair_esm(tiny_model, tiny_tokens):
    """The classifier's forward (embed, fair-esm's layers, classify) is fair-esm's own forward
    followed by the mean over residues and the head, exactly."""
    batch = pad(tiny_tokens, tiny_model.encoder.padding_idx)
    with torch.no_grad():
        mine = tiny_model(batch)
        ref = tiny_model.encoder(batch, repr_layers=[2])["representations"][2]  # (B, T, E)
        mask = tiny_model.residue_mask(batch).unsqueeze(-1).to(ref.dtype)
        expected = tiny_model.head((ref * mask).sum(1) / mask.sum(1).clamp(min=1.0))
    torch.testing.assert_close(mine, expected, rtol=0, atol=0)


def test_padding_does_not_change_logits(tiny_model, tiny_tokens):
    with torch.no_grad():
        alone = torch.cat([tiny_model(t.unsqueeze(0)) for t in tiny_tokens])
        batched = tiny_model(pad(tiny_tokens, tiny_model.encoder.padding_idx))
    torch.testing.assert_close(alone, batched, rtol=1e-5, atol=1e-5)


def test_random_init_is_seeded():
    a = build_random(Architecture(2, 32, 4), seed=3).state_dict()
    b = build_random(Architecture(2, 32, 4), seed=3).state_dict()
    c = build_random(Architecture(2, 32, 4), seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layers.0.fc1.weight"], c["layers.0.fc1.weight"])


def test_classifier_checkpoint_round_trip(tmp_path, tiny_model, tiny_tokens):
    path = tmp_path / "model.pt"
    save_classifier(path, tiny_model, {"classes": ["1", "2", "3"]})
    raw = torch.load(path, weights_only=True)  # plain tensors and containers only
    assert raw["num_classes"] == 3
    loaded, meta = load_classifier(path)
    assert meta == {"classes": ["1", "2", "3"]}
    batch = pad(tiny_tokens, tiny_model.encoder.padding_idx)
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch), tiny_model(batch), rtol=0, atol=0)


def test_load_local_fair_esm_file(tmp_path):
    encoder = build_random(Architecture(2, 32, 4), seed=7)
    path = tmp_path / "my_esm.pt"
    write_fair_esm_file(path, encoder)
    loaded = build_encoder(ModelSpec.from_config("m", {"source": "checkpoint", "path": str(path)}))
    assert loaded.num_layers == 2 and loaded.embed_dim == 32
    for k, v in encoder.state_dict().items():
        if not k.startswith("contact_head.regression"):
            assert torch.equal(loaded.state_dict()[k], v), k
    assert num_layers_of(ModelSpec(source="checkpoint", path=str(path))) == 2


def test_load_pretrained_by_name_from_hub_cache(tmp_path, monkeypatch):
    """The by-name path reads fair-esm's hub cache; the test plants the file there."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    encoder = build_random(Architecture(2, 32, 4), seed=8)
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    write_fair_esm_file(checkpoints / "esm2_t6_8M_UR50D.pt", encoder)
    loaded = build_encoder(ModelSpec(source="pretrained", name="esm2_t6_8M_UR50D"))
    assert torch.equal(loaded.layers[1].fc2.weight, encoder.layers[1].fc2.weight)


class Evil:
    def __reduce__(self):
        return (exec, ("import sys; sys.exit('pwned')",))


def test_malicious_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "cfg": {"model": Evil()}}, path)
    with pytest.raises(ModelError, match="evil.pt: refused or unreadable"):
        load_fair_esm_file(path)


def test_missing_checkpoint_is_one_line_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_fair_esm_file(tmp_path / "nope.pt")


def test_model_spec_validation():
    with pytest.raises(ModelError, match="models.x.path"):
        ModelSpec.from_config("x", {"source": "checkpoint"})
    with pytest.raises(ModelError, match="models.x"):
        ModelSpec.from_config("x", {"source": "random", "name": "no_such_shape"})
    spec = ModelSpec.from_config("x", {"source": "random", "name": "esm2_t6_8M_UR50D"})
    assert num_layers_of(spec) == 6


def test_classifier_ignores_padding_in_mean(tiny_model):
    assert isinstance(tiny_model, EsmClassifier)
    tokens = torch.tensor([[0, 5, 6, 2, 1, 1]])  # BOS, two residues, EOS, padding
    assert tiny_model.residue_mask(tokens).tolist() == [[False, True, True, False, False, False]]


def test_missing_pretrained_weights_offline_is_one_line(tmp_path, monkeypatch):
    """No weights in the hub cache and no network: one line naming the three ways out."""
    from kneurons.errors import ModelError
    from kneurons.model import checkpoints

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(checkpoints, "FAIR_ESM_URL", "http://127.0.0.1:9")  # closed port
    with pytest.raises(ModelError) as err:
        checkpoints.download_pretrained("esm2_t6_8M_UR50D")
    message = str(err.value)
    assert "\n" not in message and "offline?" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "source: checkpoint" in message and "config/synthetic.yaml" in message
    assert not list((tmp_path / "hub" / "checkpoints").glob("*.pt"))  # nothing half-written


# --- a checkpoint's shape comes from its weights (issue 12) ----------------------------------


def checkpoint_config(path, **arch) -> dict:
    entry = {"source": "checkpoint", "path": str(path)}
    if arch:
        entry["architecture"] = {"embed_dim": 32, "attention_heads": 4, **arch}
    return entry


def test_checkpoint_shape_comes_from_the_weights(tmp_path):
    """A 4-layer checkpoint: its 4 layers, whatever `architecture` says; a different
    `architecture` is one line naming the key and both shapes, not 2 layers silently."""
    path = tmp_path / "four.pt"
    write_fair_esm_file(path, build_random(Architecture(4, 32, 4), seed=2))
    assert num_layers_of(ModelSpec.from_config("m", checkpoint_config(path))) == 4
    assert num_layers_of(ModelSpec.from_config("m", checkpoint_config(path, num_layers=4))) == 4
    wrong = ModelSpec.from_config("m", checkpoint_config(path, num_layers=2))
    for call in (num_layers_of, build_encoder):
        with pytest.raises(ModelError) as err:
            call(wrong)
        message = str(err.value)
        assert "\n" not in message and message.startswith("models.m.architecture")
        assert "num_layers 2, embed_dim 32" in message and "num_layers 4, embed_dim 32" in message
        assert str(path) in message


def test_pretrained_shape_comes_from_its_name():
    spec = {"source": "pretrained", "name": "esm2_t6_8M_UR50D"}
    assert num_layers_of(ModelSpec.from_config("p", spec)) == 6
    arch = {"num_layers": 2, "embed_dim": 320, "attention_heads": 20}
    with pytest.raises(ModelError, match=r"models\.p\.architecture .*num_layers 6"):
        num_layers_of(ModelSpec.from_config("p", {**spec, "architecture": arch}))


def test_checkpoint_shape_mismatch_stops_the_dag_build(tmp_path):
    """Through the workflow: a matching `architecture` scores the checkpoint's 4 layers; a
    mismatching one stops the DAG build naming the key and both shapes."""
    from workflow_helpers import run_snakemake, write_config

    path = tmp_path / "four.pt"
    write_fair_esm_file(path, build_random(Architecture(4, 32, 4), seed=2))
    models = {"ckpt": checkpoint_config(path, num_layers=4)}
    ok = run_snakemake(tmp_path, write_config(tmp_path, models__ckpt=models["ckpt"]), "--dry-run")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "results/tiny/scores/ckpt/activation/key/layer3.parquet" in ok.stdout
    models = {"ckpt": checkpoint_config(path, num_layers=2)}
    before = sorted((tmp_path / "results").rglob("*"))  # the dry run staged the input TSV
    bad = run_snakemake(tmp_path, write_config(tmp_path, models__ckpt=models["ckpt"]), "--dry-run")
    assert bad.returncode != 0
    assert (
        "models.ckpt.architecture (num_layers 2, embed_dim 32, attention_heads 4) does not "
        f"match the checkpoint {path} (num_layers 4, embed_dim 32, attention_heads 4)"
    ) in bad.stdout + bad.stderr
    assert sorted((tmp_path / "results").rglob("*")) == before  # nothing written


# --- files that are not what they should be: one line naming the file ------------------------


@pytest.mark.parametrize(
    "content",
    [{"a": 1}, {"model": {}, "cfg": {}}, {"cfg": {"model": argparse.Namespace(x=1)}}, [1, 2]],
)
def test_torch_file_that_is_not_fair_esm_is_one_line(tmp_path, content):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    spec = ModelSpec.from_config("m", {"source": "checkpoint", "path": str(path)})
    for call in (num_layers_of, build_encoder):
        with pytest.raises(ModelError) as err:
            call(spec)
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith(f"{path}: not a fair-esm ESM-2 checkpoint")


def damaged_classifiers(folder, model) -> dict:
    """Classifier files that cannot be loaded, each for its own reason."""
    save_classifier(folder / "good.pt", model, {"classes": ["1", "2", "3"]})
    good = (folder / "good.pt").read_bytes()
    payload = torch.load(folder / "good.pt", weights_only=True)
    files = {"truncated": good[: len(good) // 2], "garbage": b"not a torch file" * 8}
    for name, data in files.items():
        (folder / f"{name}.pt").write_bytes(data)
    torch.save({**payload, "architecture": {"num_layers": 2}}, folder / "partial.pt")
    state = {k: v for k, v in payload["state_dict"].items() if k != "head.weight"}
    torch.save({**payload, "state_dict": state}, folder / "no_head.pt")
    torch.save({k: v for k, v in payload.items() if k != "meta"}, folder / "no_meta.pt")
    (folder / "pickle.pt").write_bytes(
        b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01x\x94K\x01s."
    )  # a plain pickle with protocol-4 framing: refused by weights_only with a long message
    names = ("truncated", "garbage", "partial", "no_head", "no_meta", "pickle", "missing")
    return {name: folder / f"{name}.pt" for name in names}


def test_damaged_classifier_checkpoint_is_one_line(tmp_path, tiny_model):
    for name, path in damaged_classifiers(tmp_path, tiny_model).items():
        with pytest.raises(ModelError) as err:
            load_classifier(path)
        message = str(err.value)
        assert "\n" not in message and message.startswith(f"{path}: "), (name, message)


def test_job_with_a_damaged_classifier_prints_one_line(tmp_path, tiny_model, capsys):
    """kneurons.jobs.run_job: the job's stderr is the one error line, no traceback."""
    from types import SimpleNamespace

    from kneurons.jobs import run_job

    for name, path in damaged_classifiers(tmp_path, tiny_model).items():
        job = SimpleNamespace(rule="evaluate_unmasked", input=SimpleNamespace(checkpoint=path))
        with pytest.raises(SystemExit) as exit_:
            run_job(lambda snakemake: load_classifier(snakemake.input.checkpoint), job)
        assert exit_.value.code == 1
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("Error in rule evaluate_unmasked: ")]
        assert len(errors) == 1 and str(path) in errors[0], (name, lines)
        assert all(str(path) in line for line in lines), (name, lines)  # nothing after it


def test_job_start_sets_deterministic_kernels_without_importing_inductor(tmp_path):
    """kneurons.jobs.start_job on CPU: torch's deterministic switch is on, and TorchInductor
    (which `torch.use_deterministic_algorithms` imports: ~2.6 s of every job here) is not
    loaded. Run in a fresh interpreter: this test process may have loaded it already."""
    import subprocess
    import sys

    script = f"""
import sys, types
import torch
from kneurons.jobs import start_job
job = types.SimpleNamespace(
    log=[{str(tmp_path / "job.log")!r}], rule="evaluate_masked", threads=1,
    params=types.SimpleNamespace(job={{"device": "cpu", "deterministic": False}}),
)
log, device = start_job(job)
print(device.type, torch.are_deterministic_algorithms_enabled(),
      torch.is_deterministic_algorithms_warn_only_enabled(),
      "torch._inductor" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["cpu", "True", "False", "False"]
