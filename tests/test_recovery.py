import numpy as np
import pandas as pd

from kneurons.recovery import (
    auroc,
    parse_site_features,
    plot_site_recovery,
    recovery_markdown,
    recovery_table,
    site_recovery,
    sites_from_uniprot,
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
    assert len(table) == 3 * 2 * 2  # selections x site kinds x maps
    assert table["method_family"].unique().tolist() == ["activation", "random"]
    assert table["seed"].tolist()[4:] == [0] * 4 + [1] * 4 and table["seed"].isna()[:4].all()
    row = table.query("method == 'activation' and site_kind == 'motif' and map == 'activation'")
    assert row["auroc_mean"].item() == 1.0 and row["n_sequences"].item() == 3
    assert (
        table.query("method == 'activation' and map == 'ig' and site_kind == 'motif'")[
            "auroc_mean"
        ].item()
        == 0.0
    )
    text = recovery_markdown(table, "m")
    assert "## motif: activation map" in text and "| activation | 1.000 |" in text
    assert "| random | " in text and " ± " in text
    assert "nothing to recover" in recovery_markdown(table.iloc[:0], "m")


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


def test_plot_site_recovery(tmp_path):
    plot_site_recovery(_recovery(), tmp_path / "recovery.png")
    assert (tmp_path / "recovery.png").stat().st_size > 10_000
    assert (tmp_path / "recovery.svg").read_text().startswith("<?xml")
    plot_site_recovery(_recovery().iloc[:0], tmp_path / "empty.png")
    assert (tmp_path / "empty.png").stat().st_size > 0
    assert not list(tmp_path.glob("*.tmp"))
