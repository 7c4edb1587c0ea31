import argparse

import pytest
import torch

from kneurons.batching import pad
from kneurons.errors import ModelError
from kneurons.model import (
    EsmClassifier,
    build_encoder,
    build_random,
    load_classifier,
    load_fair_esm_file,
    save_classifier,
)
from kneurons.spec import Architecture, ModelSpec, num_layers_of


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
    from kneurons import checkpoints
    from kneurons.errors import ModelError

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(checkpoints, "FAIR_ESM_URL", "http://127.0.0.1:9")  # closed port
    with pytest.raises(ModelError) as err:
        checkpoints.download_pretrained("esm2_t6_8M_UR50D")
    message = str(err.value)
    assert "\n" not in message and "offline?" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "source: checkpoint" in message and "config/synthetic.yaml" in message
    assert not list((tmp_path / "hub" / "checkpoints").glob("*.pt"))  # nothing half-written
