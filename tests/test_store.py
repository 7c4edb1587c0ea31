import numpy as np
import pytest
import torch

from kneurons.evaluation.masking import mask_fingerprint
from kneurons.store import Store, digest


def test_arrays_round_trip_under_their_key_and_context(tmp_path):
    store = Store(tmp_path, "logits", {"checkpoint": "abc", "mode": "zero"})
    key = store.key("mask", 1)
    assert store.load_array(key) is None and store.misses == 1
    values = np.arange(12, dtype=np.float32).reshape(4, 3)
    store.save_array(key, values)
    np.testing.assert_array_equal(store.load_array(key, shape=(4, 3)), values)
    assert store.hits == 1
    # another shape than expected: not this result
    assert store.load_array(key, shape=(5, 3)) is None
    # another context or part gives another name
    other = Store(tmp_path, "logits", {"checkpoint": "abd", "mode": "zero"})
    assert other.key("mask", 1) != key and other.load_array(other.key("mask", 1)) is None
    assert store.key("mask", 2) != key
    # the context's key order does not matter
    same = Store(tmp_path, "logits", {"mode": "zero", "checkpoint": "abc"})
    assert same.key("mask", 1) == key


def test_a_damaged_entry_is_a_miss_not_an_error(tmp_path):
    store = Store(tmp_path, "logits", {})
    key = store.key("x")
    store.save_array(key, np.ones(3))
    path = next(tmp_path.rglob("*.npy"))
    path.write_bytes(b"not an array")
    assert store.load_array(key) is None


def test_pickled_objects_are_never_loaded(tmp_path):
    store = Store(tmp_path, "logits", {})
    key = store.key("x")
    path = tmp_path / "logits" / key[:2] / f"{key}.npy"
    path.parent.mkdir(parents=True)
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert store.load_array(key) is None


def test_files_are_kept_and_fetched_by_key(tmp_path):
    store = Store(tmp_path / "store", "scores", {"a": 1})
    source = tmp_path / "scores.parquet"
    source.write_bytes(b"payload")
    key = store.key("key", 0)
    dest = tmp_path / "out/layer0.parquet"
    assert not store.fetch_file(key, ".parquet", dest) and not dest.exists()
    store.keep_file(key, ".parquet", source)
    assert store.fetch_file(key, ".parquet", dest) and dest.read_bytes() == b"payload"


def test_digest_is_canonical_and_handles_bytes():
    assert digest({"b": 1, "a": [b"\x00\x01"]}) == digest({"a": [b"\x00\x01"], "b": 1})
    assert digest({"a": b"\x00"}) != digest({"a": b"\x01"})
    with pytest.raises(TypeError):
        digest({"a": object()})


def test_mask_fingerprint_names_what_a_mask_ablates():
    half = torch.tensor([1.0, 0.0, 1.0, 0.0])
    ones = torch.ones(4)
    a = mask_fingerprint({("key", 0): half, ("key", 1): ones})
    # a module whose mask ablates nothing is left out: it does not change the computation
    assert a == mask_fingerprint({("key", 0): half})
    assert len(a) == 1 and a[0][:3] == ["key", 0, 4]
    assert a != mask_fingerprint({("key", 0): torch.tensor([1.0, 1.0, 1.0, 0.0])})
    assert a != mask_fingerprint({("query", 0): half})
    assert mask_fingerprint({("key", 0): ones}) == []
    with pytest.raises(ValueError, match="key layer 0"):
        mask_fingerprint({("key", 0): torch.tensor([0.5, 1.0])})
