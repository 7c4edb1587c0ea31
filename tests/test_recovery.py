import numpy as np
import pandas as pd
import pytest

from kneurons.data.sites import parse_site_features, sites_from_uniprot
from kneurons.residues.figures import plot_site_recovery
from kneurons.residues.recovery import (
    align_maps,
    auroc,
    completeness_note,
    contrast_maps,
    contrast_verdicts,
    plain_rows,
    recovery_markdown,
    recovery_table,
    scale_by_sequence,
    site_recovery,
)


def test_auroc_perfect_random_and_ties():
    labels = np.array([0, 0, 1, 1, 0])
    assert auroc(np.array([0.1, 0.2, 0.9, 0.8, 0.3]), labels) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.1, 0.2, 0.7]), labels) == 0.0
    assert auroc(np.ones(5), labels) == 0.5
    rng = np.random.default_rng(0)
    assert abs(auroc(rng.random(20000), rng.random(20000) < 0.1) - 0.5) < 0.02
    assert np.isnan(auroc(np.ones(3), np.zeros(3)))


def test_site_recovery_per_sequence_and_pooled():
    maps = pd.DataFrame(
        {
            "accession": ["A"] * 4 + ["B"] * 4 + ["C"] * 2,
            "position": [1, 2, 3, 4] * 2 + [1, 2],
            "ig": [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.5],
        }
    )
    sites = pd.DataFrame({"accession": ["A", "B", "Z"], "start": [2, 3, 1], "end": [2, 4, 9]})
    stats = site_recovery(maps, sites, "ig")
    # A: the site residue is the top one (1.0); B: sites 3 and 4 hold 0 and 1 (0.75); C: none
    assert stats["n_sequences"] == 2 and stats["n_site_residues"] == 3
    assert stats["auroc_mean"] == (1.0 + 0.75) / 2


def test_uniprot_site_features():
    text = 'ACT_SITE 57; /note="Proton acceptor"; BINDING 100..104; /ligand="ATP"'
    assert parse_site_features(text) == [(57, 57), (100, 104)]
    table = pd.DataFrame(
        {
            "Entry": ["P1", "P2"],
            "Active site": ["ACT_SITE 3", ""],
            "Binding site": ['BINDING 5..6; /ligand="Zn"', "BINDING 2"],
        }
    )
    sites = sites_from_uniprot(table)
    assert sites.values.tolist() == [
        ["P1", "active_site", 3, 3],
        ["P1", "binding_site", 5, 6],
        ["P2", "binding_site", 2, 2],
    ]


def test_recovery_table_and_markdown():
    rng = np.random.default_rng(0)
    frames = []
    for method, shift in (("activation", 5.0), ("random-0", 0.0), ("random-1", 0.0)):
        positions = np.tile(np.arange(1, 41), 3)
        acc = np.repeat(["A", "B", "C"], 40)
        value = rng.random(120) + shift * ((positions >= 10) & (positions <= 14))
        frames.append(
            pd.DataFrame(
                {
                    "method": method,
                    "layer_type": "key",
                    "retention": 10.0,
                    "accession": acc,
                    "position": positions,
                    "residue": "M",
                    "activation": value,
                    "ig": -value,
                }
            )
        )
    sites = pd.DataFrame(
        {
            "accession": ["A", "B", "C", "A"],
            "kind": ["motif"] * 3 + ["decoy"],
            "start": [10, 10, 10, 30],
            "end": [14, 14, 14, 33],
        }
    )
    table = recovery_table(frames, sites)
    # selections x site kinds x maps, plain and contrast (2 random seeds: leave-one-out works)
    assert len(table) == 2 * 3 * 2 * 2
    assert table["map_kind"].tolist() == ["plain"] * 12 + ["contrast"] * 12
    plain = plain_rows(table)
    assert plain["method_family"].unique().tolist() == ["activation", "random"]
    assert plain["seed"].tolist()[4:] == [0] * 4 + [1] * 4 and plain["seed"].isna()[:4].all()
    assert plain["scale_ratio"].isna().all() and table["scale_ratio"].iloc[12:].notna().all()
    row = plain.query("method == 'activation' and site_kind == 'motif' and map == 'activation'")
    assert row["auroc_mean"].item() == 1.0 and row["n_sequences"].item() == 3
    assert (
        plain.query("method == 'activation' and map == 'ig' and site_kind == 'motif'")[
            "auroc_mean"
        ].item()
        == 0.0
    )
    # the bump of 5 on the motif survives the random mean: contrast AUROC 1 (ig: 0)
    contrast = table[table["map_kind"] == "contrast"].set_index(["method", "site_kind", "map"])
    assert contrast.at[("activation", "motif", "activation"), "auroc_mean"] == 1.0
    assert contrast.at[("activation", "motif", "ig"), "auroc_mean"] == 0.0
    text = recovery_markdown(table, "m")
    assert "## motif: activation map" in text and "| activation | plain | 1.000 |" in text
    assert "| activation | contrast | 1.000 |" in text
    assert "| random | plain | " in text and "| random | contrast | " in text and " ± " in text
    r0 = contrast.at[("random-0", "motif", "activation"), "auroc_mean"]
    r1 = contrast.at[("random-1", "motif", "activation"), "auroc_mean"]
    assert (
        "- **activation** contrast AUROC vs the random seeds' spread: above it at key 10% "
        f"(1.000 > {max(r0, r1):.3f}, map 2× the random mean's size)." in text
    )
    assert "No contrast maps" not in text
    assert "nothing to recover" in recovery_markdown(table.iloc[:0], "m")


def residue_map(method, values, layer_type="key", retention=10.0, accession=None, positions=None):
    """A residue map of one selection; `ig` is 10 times `activation`."""
    values = np.asarray(values, dtype=np.float64)
    positions = np.arange(1, len(values) + 1) if positions is None else positions
    return pd.DataFrame(
        {
            "method": method,
            "layer_type": layer_type,
            "retention": retention,
            "accession": "A" if accession is None else accession,
            "position": positions,
            "residue": "M",
            "activation": values,
            "ig": 10 * values,
        }
    )


def test_contrast_maps_leave_one_out_by_hand():
    r0, r1, r2 = [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0], [0.0, 4.0, 1.0, 3.0]
    method = residue_map("integrated_gradients", [5.0, 5.0, 5.0, 5.0, 9.0])  # position 5: only here
    shuffled = residue_map("random-1", r1).iloc[[2, 0, 3, 1]]  # rows in another order
    maps = [
        method,
        residue_map("random-0", r0),
        shuffled,
        residue_map("random-2", r2),
        residue_map("integrated_gradients", [1.0, 2.0], layer_type="value"),
        residue_map("random-0", [1.0, 1.0], layer_type="value"),  # one seed: no contrast
    ]
    out = contrast_maps(maps)
    assert [m["method"].iloc[0] for m in out] == [
        "integrated_gradients",
        "random-0",
        "random-1",
        "random-2",
    ]
    assert all(m["position"].tolist() == [1, 2, 3, 4] for m in out)  # rows in every map only
    # a method: its map minus the mean of the 3 seeds ([1, 8/3, 2, 3])
    np.testing.assert_allclose(out[0]["activation"], [4.0, 7 / 3, 3.0, 2.0])
    np.testing.assert_allclose(out[0]["activation_baseline"], [1.0, 8 / 3, 2.0, 3.0])
    # a seed: its map minus the mean of the two others
    np.testing.assert_allclose(out[1]["activation"], [0.0, -1.0, 1.5, 1.5])
    np.testing.assert_allclose(out[2]["activation"], [1.5, -1.0, 0.0, -1.5])
    np.testing.assert_allclose(out[3]["activation"], [-1.5, 2.0, -1.5, 0.0])
    np.testing.assert_allclose(out[3]["ig"], [-15.0, 20.0, -15.0, 0.0])  # per value column
    assert contrast_maps(maps[3:]) == []  # one seed per layer type: nothing to contrast with


def test_contrast_maps_reject_maps_of_other_sequences():
    maps = [
        residue_map("random-0", [1.0, 2.0], accession=["A", "A"]),
        residue_map("random-1", [1.0, 2.0], accession=["A", "A"]),
        residue_map("integrated_gradients", [1.0, 2.0], accession=["A", "B"], positions=[1, 1]),
    ]
    with pytest.raises(ValueError, match=r"residue map of integrated_gradients \(key, keep 10%\)"):
        contrast_maps(maps)
    with pytest.raises(ValueError, match="1 extra"):
        recovery_table(maps, pd.DataFrame({"accession": ["A"], "kind": ["motif"], "start": [1],
                                           "end": [1]}))  # fmt: skip
    assert [len(m) for m in align_maps(maps[:2])] == [2, 2]


MOTIF, DECOY = slice(9, 14), slice(29, 34)  # 0-based rows of positions 10-14 and 30-34


def focus_maps(n_seq: int = 40, length: int = 60, seed: int = 0) -> list[pd.DataFrame]:
    """3 random selections whose maps follow the model's focus (10 on the motif, 5 on the decoy,
    1 elsewhere, plus seed noise), and a method: their mean map plus a bump of 3 on the motif and
    noise of its own."""
    rng = np.random.default_rng(seed)
    focus = np.ones(length)
    focus[MOTIF], focus[DECOY] = 10.0, 5.0
    bump = np.zeros(length)
    bump[MOTIF] = 3.0
    accession = np.repeat([f"S{i}" for i in range(n_seq)], length)
    positions = np.tile(np.arange(1, length + 1), n_seq)
    seeds = [np.tile(focus, n_seq) + rng.normal(0, 0.1, n_seq * length) for _ in range(3)]
    method = np.mean(seeds, axis=0) + np.tile(bump, n_seq) + rng.normal(0, 0.1, n_seq * length)
    named = [("integrated_gradients", method)] + [(f"random-{i}", v) for i, v in enumerate(seeds)]
    return [residue_map(name, v, accession=accession, positions=positions) for name, v in named]


FOCUS_SITES = pd.DataFrame(
    {
        "accession": [f"S{i}" for i in range(40)] * 2,
        "kind": ["motif"] * 40 + ["decoy"] * 40,
        "start": [10] * 40 + [30] * 40,
        "end": [14] * 40 + [34] * 40,
    }
)


def test_contrast_tells_a_bump_from_the_focus_every_selection_follows():
    table = recovery_table(focus_maps(), FOCUS_SITES).query("map == 'ig'")
    auc = table.set_index(["map_kind", "site_kind", "method"])["auroc_mean"]
    methods = ["integrated_gradients", "random-0", "random-1", "random-2"]
    # plain maps: every selection ranks the motif first and the decoy next (50 of 55 negatives)
    assert [auc["plain", "motif", m] for m in methods] == [1.0] * 4
    assert [auc["plain", "decoy", m] for m in methods] == pytest.approx([50 / 55] * 4)
    # contrast: the method's bump stands out; the seeds' leave-one-out contrasts are noise
    assert auc["contrast", "motif", "integrated_gradients"] == 1.0
    for m in methods[1:]:
        assert abs(auc["contrast", "motif", m] - 0.5) < 0.05
        assert abs(auc["contrast", "decoy", m] - 0.5) < 0.05
    assert abs(auc["contrast", "decoy", "integrated_gradients"] - 0.5) < 0.05  # no label
    verdicts = contrast_verdicts(table).set_index("site_kind")
    assert verdicts.at["motif", "verdict"] == "above" and verdicts.at["motif", "n_seeds"] == 3
    assert verdicts.at["motif", "random_max"] < 0.55
    assert verdicts.at["motif", "scale_ratio"] == pytest.approx(1.12, abs=0.01)  # 1 + 15/125
    text = recovery_markdown(table, "m")
    assert "above it at key 10% (1.000 > " in text
    assert "Decoys carry no label: a method's contrast AUROC should stay near 0.5" in text


def test_contrast_of_a_larger_map_and_per_sequence_scaling():
    focus = np.array([1.0, 1.0, 4.0, 4.0, 1.0, 2.0])
    maps = [
        residue_map("integrated_gradients", 16 * focus),  # same shape, 16 times the size
        residue_map("random-0", focus),
        residue_map("random-1", focus),
    ]
    sites = pd.DataFrame({"accession": ["A"], "kind": ["motif"], "start": [3], "end": [4]})
    raw = recovery_table(maps, sites).query("map_kind == 'contrast' and map == 'ig'")
    raw = raw.set_index("method")
    # minus the random mean, the larger map is 15 x the focus: its contrast is its plain map
    assert raw.at["integrated_gradients", "auroc_mean"] == 1.0
    assert raw.at["integrated_gradients", "scale_ratio"] == pytest.approx(16.0)
    assert raw.at["random-0", "auroc_mean"] == 0.5  # identical seeds: contrast 0, all ties
    assert "map 16× the random mean's size" in recovery_markdown(raw.reset_index(), "m")
    # divided by its mean |value| per sequence first, it has nothing the random maps lack
    scaled = recovery_table(maps, sites, contrast_scale=True)
    scaled = scaled.query("map_kind == 'contrast'").set_index(["method", "map"])
    assert scaled.at[("integrated_gradients", "ig"), "auroc_mean"] == 0.5
    assert scaled.at[("integrated_gradients", "ig"), "scale_ratio"] == pytest.approx(1.0)
    np.testing.assert_allclose(scale_by_sequence(maps[0])["ig"], focus / focus.mean())


def test_markdown_says_why_there_is_no_contrast():
    maps = [residue_map("activation", [1.0, 5.0, 1.0]), residue_map("random-0", [1.0, 1.0, 2.0])]
    sites = pd.DataFrame({"accession": ["A"], "kind": ["motif"], "start": [2], "end": [2]})
    table = recovery_table(maps, sites)
    assert set(table["map_kind"]) == {"plain"} and len(table) == 4
    text = recovery_markdown(table, "m")
    assert "No contrast maps for key 10% (1 random seed): a contrast needs at least 2" in text
    assert "| activation | plain | 1.000 |" in text and "| random | plain | 0.250 ± 0.000" in text


RECOVERY = {
    "activation": {("motif", "activation"): 0.93, ("motif", "ig"): 0.97, ("decoy", "ig"): 0.52},
    "random-0": {("motif", "activation"): 0.55, ("motif", "ig"): 0.60, ("decoy", "ig"): 0.50},
    "random-1": {("motif", "activation"): 0.45, ("motif", "ig"): 0.70, ("decoy", "ig"): 0.48},
}


def _recovery(model: str = "tiny") -> pd.DataFrame:
    rows = []
    for method, cells in RECOVERY.items():
        family, _, seed = method.partition("-")
        for (kind, value), auroc_value in cells.items():
            rows.append({"model": model, "method": method, "method_family": family,
                         "seed": int(seed) if seed else None, "layer_type": "key",
                         "retention": 10.0, "site_kind": kind, "map": value,
                         "auroc_mean": auroc_value, "auroc_pooled": auroc_value,
                         "n_sequences": 4, "n_site_residues": 20})  # fmt: skip
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("Int64")
    return table


def png_size(path) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's header."""
    head = path.read_bytes()[16:24]
    return int.from_bytes(head[:4], "big"), int.from_bytes(head[4:], "big")


def test_plot_site_recovery(tmp_path):
    plot_site_recovery(_recovery(), tmp_path / "recovery.png")  # a table without map_kind
    assert (tmp_path / "recovery.png").stat().st_size > 10_000
    # contrast panels to the right of the plain ones: twice the columns, same rows
    table = recovery_table(focus_maps(n_seq=4), FOCUS_SITES)
    plot_site_recovery(plain_rows(table), tmp_path / "plain.png")
    plot_site_recovery(table, tmp_path / "contrast.png")
    (w_plain, h_plain), (w, h) = (
        png_size(tmp_path / "plain.png"),
        png_size(tmp_path / "contrast.png"),
    )
    assert h == h_plain and w > 1.6 * w_plain  # 1.2 + 3.8 n inches for n panel columns
    assert (tmp_path / "contrast.svg").stat().st_size > 10_000
    assert (tmp_path / "recovery.svg").read_text().startswith("<?xml")
    plot_site_recovery(_recovery().iloc[:0], tmp_path / "empty.png")
    assert (tmp_path / "empty.png").stat().st_size > 0
    assert not list(tmp_path.glob("*.tmp"))


def test_completeness_note_names_the_maps_above_tolerance():
    def frame(method):
        return pd.DataFrame({"method": [method], "layer_type": ["query"], "retention": [10.0]})

    good = {"completeness": {"n_integrals": 8, "n_above_tolerance": 0, "rel_gap_max": 0.001}}
    bad = {"completeness": {"n_integrals": 8, "n_above_tolerance": 3, "rel_gap_max": 0.4}}
    maps = [frame("integrated_gradients"), frame("random-0")]
    assert completeness_note(maps, [{}, {}]) == []  # maps written without the record
    ok = completeness_note(maps, [good, good])
    assert "every (sequence, module) integral of the 2 maps meets" in ok[0]
    missed = completeness_note(maps, [good, bad])[0]
    assert "random-0 query 10%: 3 of 8 (largest |gap| / |F(1) − F(0)| 0.4)" in missed
    assert "integrated_gradients" not in missed
