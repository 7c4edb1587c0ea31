import math
import random

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from kneurons.model.batching import tokenize
from kneurons.model.classifier import alphabet
from kneurons.model.hooks import captured_outputs
from kneurons.profiles.composition import (
    AMINO_ACIDS,
    COMPOSITION_COLUMNS,
    UNIT_COLUMNS,
    Profiles,
    background_composition,
    enrichment,
    expected_fractions,
    kept_at_cut,
    same_window_groups,
    site_overlap,
    tie_words,
    unit_table,
    window_composition,
)
from kneurons.profiles.figures import logo_matrix, plot_logos
from kneurons.profiles.report import pooled_overlap, profiles_markdown, profiles_section
from kneurons.profiles.scan import (
    WINDOW_COLUMNS,
    cutoff_ties,
    peaks_of,
    profile_neurons,
    scan_peaks,
    top_units,
    top_windows,
    windows_from_peaks,
)


def units_frame(*rows):
    """Units (method, layer_type, layer, neuron, rank, score) from (method, type, layer, neuron)."""
    return pd.DataFrame(
        [
            {"method": m, "layer_type": t, "layer": la, "neuron": n, "rank": r, "score": 1.0}
            for r, (m, t, la, n) in enumerate(rows)
        ]
    )


def examples_frame(sequences, labels=None):
    return pd.DataFrame(
        {
            "accession": [f"P{i}" for i in range(len(sequences))],
            "sequence": sequences,
            "label": labels or [0] * len(sequences),
        }
    )


SITE_COLUMNS = ["accession", "kind", "start", "end"]


# --- windows ---------------------------------------------------------------------------------


def test_windows_on_a_planted_sequence():
    # P0 carries the motif WCHWM at positions 11..15; the unit peaks on its H (position 13)
    seqs = ["AAAAAAAAAAWCHWMAAAAAAAA", "GGGGGGGGGGGGGGG", "SSSSSSSSSS"]
    act0 = np.zeros((23, 1))
    act0[12, 0] = 5.0  # the H of the motif, position 13
    act0[3, 0] = 4.5  # a second high residue in the same sequence: never a second window
    act1 = np.full((15, 1), 0.5)
    act1[7, 0] = 2.0  # P1's peak: position 8
    act2 = np.full((10, 1), 1.0)  # P2: flat, its first residue is the peak
    examples = examples_frame(seqs, labels=[2, 1, 0])
    units = units_frame(("integrated_gradients", "query", 1, 7))
    sites = pd.DataFrame([["P0", "motif", 11, 15], ["P1", "decoy", 1, 3]], columns=SITE_COLUMNS)
    windows = top_windows(examples, [act0, act1, act2], units, top_k=2, half_width=2, sites=sites)
    assert list(windows.columns) == list(WINDOW_COLUMNS)
    assert windows["accession"].tolist() == ["P0", "P1"]  # one window per sequence
    first = windows.iloc[0]
    assert (first["position"], first["residue"], first["window"]) == (13, "H", "WCHWM")
    assert (first["window_start"], first["window_end"]) == (11, 15)
    assert (first["activation"], first["response"], first["label"]) == (5.0, 5.0, 2)
    assert first["peak_sites"] == "motif"
    second = windows.iloc[1]
    assert (second["position"], second["window"], second["window_rank"]) == (8, "GGGGG", 1)
    assert second["peak_sites"] == ""  # the decoy is at 1..3
    assert windows[["method", "layer_type", "layer", "neuron", "rank"]].iloc[0].tolist() == [
        "integrated_gradients",
        "query",
        1,
        7,
        0,
    ]
    # top_k larger than the sequences: every sequence once, no more
    every = top_windows(examples, [act0, act1, act2], units, top_k=10, half_width=2)
    assert every["accession"].tolist() == ["P0", "P1", "P2"]
    assert every["window"].tolist()[2] == "SSS"  # P2 peaks at position 1: clipped


def test_windows_are_clipped_at_both_sequence_ends():
    seq = "MKTAYIAKQR"  # 10 residues
    examples = examples_frame([seq, seq[::-1]])
    start = np.zeros((10, 1))
    start[0, 0] = 3.0  # position 1
    end = np.zeros((10, 1))
    end[9, 0] = 2.0  # position 10
    windows = top_windows(examples, [start, end], units_frame(("a", "key", 0, 0)), 2, 3)
    assert windows["position"].tolist() == [1, 10]
    assert windows["window_start"].tolist() == [1, 7]
    assert windows["window_end"].tolist() == [4, 10]
    assert windows["window"].tolist() == ["MKTA", "ATKM"]
    assert windows["window"].str.len().tolist() == [4, 4]
    # half width 0: the peak residue alone
    alone = top_windows(examples, [start, end], units_frame(("a", "key", 0, 0)), 2, 0)
    assert alone["window"].tolist() == ["M", "M"]


def test_ties_between_sequences_are_broken_by_the_seed():
    """Six sequences with the same peak (a layer-0 unit reads each residue alone): the kept
    windows follow a seeded permutation, not the table's order, and the tie is counted."""
    examples = examples_frame(["AWA"] * 6)
    acts = [np.array([[0.0], [1.0], [0.0]])] * 6
    units = units_frame(("m", "key", 0, 0))
    for seed in (0, 1):
        windows = top_windows(examples, acts, units, 3, 1, seed=seed)
        permutation = np.random.default_rng(seed).permutation(6)
        order = np.argsort(permutation)[:3]  # the sequences placed first by the permutation
        assert windows["accession"].tolist() == [f"P{i}" for i in order]
    assert cutoff_ties(peaks_of(acts, units), 3).tolist() == [6]
    clean = [np.array([[0.0], [float(i)], [0.0]]) for i in range(6)]
    assert cutoff_ties(peaks_of(clean, units), 3).tolist() == [1]


def test_absolute_response_except_for_ffn_in():
    """Query units rank by |activation| (their sign is not identifiable); ffn_in by the signed
    value (before the GELU, negative means off)."""
    examples = examples_frame(["ACDEFGHIK"])
    act = np.zeros((9, 2))
    act[2, :] = -6.0  # D: strongly negative in both units
    act[5, :] = 4.0  # G: positive
    units = units_frame(("m", "query", 0, 0), ("m", "ffn_in", 0, 0))
    windows = top_windows(examples, [act], units, 1, 1)
    query, ffn_in = windows.iloc[0], windows.iloc[1]
    assert (query["position"], query["activation"], query["response"]) == (3, -6.0, 6.0)
    assert (ffn_in["position"], ffn_in["activation"], ffn_in["response"]) == (6, 4.0, 4.0)


def test_top_units_are_the_best_ranks_of_the_all_class_ranking():
    ranking = pd.DataFrame(
        {
            "layer_type": "key",
            "layer": [0, 1, 1, 0, 0, 1],
            "neuron": [4, 2, 9, 1, 3, 5],
            "label": [-1, -1, -1, -1, 0, 0],  # the last two: class 0's own ranking
            "group_ranking": pd.array([None] * 6, dtype="string"),
            "score": [0.9, 0.8, 0.1, 0.5, 9.0, 8.0],
            "rank": [0, 1, 3, 2, 0, 1],
            "pool_size": 4,
        }
    )
    units = top_units(ranking, "activation", 3)
    assert list(units.columns) == [*UNIT_COLUMNS, "score"]
    assert units[["layer", "neuron", "rank"]].values.tolist() == [[0, 4, 0], [1, 2, 1], [0, 1, 2]]
    assert (units["method"] == "activation").all()


# --- composition and site overlap ---------------------------------------------------------


def test_composition_enrichment_by_hand():
    background = background_composition(["AAAAAAAACC"])  # A 0.8, C 0.2
    assert background["A"] == pytest.approx(0.8) and background["C"] == pytest.approx(0.2)
    assert background.drop(["A", "C"]).eq(0).all() and list(background.index) == list(AMINO_ACIDS)
    windows = pd.DataFrame(
        {
            "method": "m",
            "layer_type": "key",
            "layer": 0,
            "neuron": 1,
            "rank": 0,
            "window": ["CC", "AC"],  # A 1, C 3 of 4
        }
    )
    comp = window_composition(windows, background).set_index("residue")
    assert list(window_composition(windows, background).columns) == list(COMPOSITION_COLUMNS)
    assert comp.loc["A", "count"] == 1 and comp.loc["C", "count"] == 3
    assert comp.loc["A", "frequency"] == pytest.approx(0.25)
    assert comp.loc["C", "frequency"] == pytest.approx(0.75)
    # 20 pseudo-residues in background proportions: A (1 + 16) / 24, C (3 + 4) / 24
    assert comp.loc["A", "log2_enrichment"] == pytest.approx(math.log2(17 / 24 / 0.8))
    assert comp.loc["C", "log2_enrichment"] == pytest.approx(math.log2(7 / 24 / 0.2))
    assert comp.loc["C", "log2_enrichment"] == pytest.approx(0.54432, abs=1e-5)
    assert np.isnan(comp.loc["W", "log2_enrichment"])  # absent from the background
    raw = enrichment(pd.Series({"A": 1, "C": 3}), pd.Series({"A": 0.8, "C": 0.2}), 0.0)
    assert raw["A"] == pytest.approx(math.log2(0.25 / 0.8))
    assert raw["C"] == pytest.approx(math.log2(0.75 / 0.2))


def test_site_overlap_and_expected_fraction_by_hand():
    # 30 residues: P0 has 10, P1 has 20
    examples = examples_frame(["A" * 10, "G" * 20])
    sites = pd.DataFrame(
        [
            ["P0", "motif", 3, 5],  # 3 residues
            ["P1", "motif", 18, 22],  # 3 inside the sequence (18..20)
            ["P1", "motif", 19, 20],  # overlaps the previous one: counted once
            ["P0", "decoy", 1, 2],  # 2 residues
            ["P9", "motif", 1, 50],  # not scanned
        ],
        columns=SITE_COLUMNS,
    )
    expected = expected_fractions(examples, sites)
    assert expected == {"motif": pytest.approx(6 / 30), "decoy": pytest.approx(2 / 30)}
    # one unit, 4 windows (one per sequence): peaks at P0:4 (motif), P1:20 (motif),
    # P2:1 (decoy), P3:7 (nothing)
    examples4 = examples_frame(["A" * 10, "G" * 20, "A" * 10, "A" * 10])
    sites4 = pd.concat(
        [sites, pd.DataFrame([["P2", "decoy", 1, 2]], columns=SITE_COLUMNS)], ignore_index=True
    )
    acts = []
    for length, peak, value in [(10, 3, 4.0), (20, 19, 3.0), (10, 0, 2.0), (10, 6, 1.0)]:
        a = np.zeros((length, 1))
        a[peak, 0] = value
        acts.append(a)
    windows = top_windows(examples4, acts, units_frame(("m", "key", 0, 0)), 4, 1, sites4)
    assert windows["peak_sites"].tolist() == ["motif", "motif", "decoy", ""]
    overlap = site_overlap(windows, expected).set_index("site_kind")
    motif = overlap.loc["motif"]
    assert (motif["n_windows"], motif["n_inside"], motif["fraction"]) == (4, 2, 0.5)
    assert motif["expected"] == pytest.approx(0.2)
    assert motif["enrichment"] == pytest.approx(2.5)
    # P(X >= 2), X ~ Binomial(4, 0.2) = 1 - 0.8^4 - 4 * 0.2 * 0.8^3
    assert motif["p_value"] == pytest.approx(1 - 0.8**4 - 4 * 0.2 * 0.8**3)
    decoy = overlap.loc["decoy"]
    assert (decoy["n_inside"], decoy["fraction"]) == (1, 0.25)
    assert decoy["enrichment"] == pytest.approx(0.25 / (2 / 30))
    assert decoy["p_value"] == pytest.approx(1 - (1 - 2 / 30) ** 4)


def test_logo_heights_of_identical_windows():
    windows = pd.DataFrame(
        {
            "window": ["WCHWM"] * 5 + ["CHWM"],  # the last one clipped at the sequence start
            "position": [13] * 5 + [2],
            "window_start": [11] * 5 + [1],
        }
    )
    heights = logo_matrix(windows, 2)
    assert list(heights.index) == [-2, -1, 0, 1, 2]
    # offset -2: 5 W; offsets -1..2: 6 identical letters each
    ic5 = math.log2(20) - 19 / (2 * math.log(2) * 5)
    ic6 = math.log2(20) - 19 / (2 * math.log(2) * 6)
    assert heights.loc[-2, "W"] == pytest.approx(ic5)
    assert heights.loc[0, "H"] == pytest.approx(ic6)
    assert heights.loc[2, "M"] == pytest.approx(ic6)
    assert heights.sum(axis=1).tolist() == pytest.approx([ic5, ic6, ic6, ic6, ic6])


def unit_rows(method, n_windows, inside, expected=0.2, layer_type="key"):
    return pd.DataFrame(
        {
            "method": method,
            "layer_type": layer_type,
            "layer": 0,
            "neuron": range(len(inside)),
            "rank": range(len(inside)),
            "n_windows": n_windows,
            "n_inside_motif": inside,
            "overlap_motif": [k / n_windows for k in inside],
            "expected_motif": expected,
        }
    )


def test_pooled_overlap_against_random_by_hand():
    table = pd.concat(
        [unit_rows("integrated_gradients", 4, [3, 1]), unit_rows("random-0", 4, [0, 1])],
        ignore_index=True,
    )
    pooled = pooled_overlap(table).set_index("method")
    ig = pooled.loc["integrated_gradients"]
    assert (ig["n_units"], ig["n_windows"], ig["n_inside"]) == (2, 8, 4)
    assert ig["fraction"] == 0.5 and ig["enrichment"] == pytest.approx(2.5)
    assert ig["p_value"] == pytest.approx(stats.binom.sf(3, 8, 0.2))
    assert ig["reference_fraction"] == 0.125
    assert ig["reference_enrichment"] == pytest.approx(0.625)
    fisher = stats.fisher_exact([[4, 4], [1, 7]], alternative="greater").pvalue
    assert ig["p_vs_reference"] == pytest.approx(fisher)
    assert np.isnan(pooled.loc["random-0", "p_vs_reference"])
    text = profiles_section(table, level=3)
    assert text.startswith("### What the top neurons respond to")
    assert "50% of the top 2 units' 8 windows peak in a planted motif" in text
    assert "2.5×" in text and "random-0's units (12%, 0.6×" in text
    assert profiles_section(table.iloc[0:0]) == ""


def test_profiles_section_without_sites_counts_the_enriched_residues():
    table = pd.DataFrame(
        {
            "method": ["activation"] * 3 + ["random-0"] * 2,
            "layer_type": "value",
            "n_windows": 20,
            "top_residue": ["W", "C", "W", "A", "L"],
        }
    )
    assert pooled_overlap(table).empty
    text = profiles_section(table)
    assert "no site overlap to report" in text
    assert "| value | activation | 3 | W 2, C 1 |" in text
    assert "| value | random-0 | 2 | A 1, L 1 |" in text


# --- the page and logos: units with the same windows, ties at the cut ----------------------


def tied_profiles() -> Profiles:
    """Six sequences, top 2 windows per unit. Units 0 and 1 (layer 0) fire on W alone, unit 1
    twice as strongly: the four sequences with a W tie, and both units keep the same two.
    Unit 2 peaks at a different height in every sequence: a clean cut."""
    sequences = ["AWAC", "CWAA", "AAWC", "WACA", "ACCA", "CAAA"]
    examples = examples_frame(sequences)
    acts = []
    for i, seq in enumerate(sequences):
        a = np.zeros((len(seq), 3))
        a[:, 0] = [1.0 if r == "W" else 0.0 for r in seq]
        a[:, 1] = 2.0 * a[:, 0]
        a[0, 2] = 0.1 * (i + 1)
        acts.append(a)
    units = units_frame(("m", "key", 0, 0), ("m", "key", 0, 1), ("m", "key", 1, 2))
    peaks = peaks_of(acts, units)
    windows = windows_from_peaks(examples, units, peaks, 2, 1)
    composition = window_composition(windows, background_composition(examples["sequence"]))
    overlap = site_overlap(windows, {})
    table = unit_table(units.assign(cutoff_ties=cutoff_ties(peaks, 2)), windows, composition,
                       overlap)  # fmt: skip
    return Profiles(windows, composition, table, len(sequences), 24, {}, 2, 1)


def test_units_with_the_same_windows_share_one_row_with_their_count():
    profiles = tied_profiles()
    assert same_window_groups(profiles.table, profiles.windows) == [[0, 1], [2]]
    assert profiles.table["cutoff_ties"].tolist() == [4, 4, 1]
    text = profiles_markdown(profiles, "tiny")
    rows = [line for line in text.splitlines() if line.startswith("| 0") or line.startswith("| 2")]
    assert len(rows) == 2, rows  # three units, two rows
    assert rows[0].startswith("| 0, 1 | 2 units: L0 #0, #1 | 1.00–2.00 | 2 of 4 | W ")
    assert rows[1].startswith("| 2 | L1 #2 | 0.55 | none | ")
    assert "| rank | unit | mean response | kept from a tie |" in text
    assert "**Units sharing a row**" in text


def test_a_tie_at_the_cut_is_said_in_words():
    profiles = tied_profiles()
    text = profiles_markdown(profiles, "tiny")
    # what the cut is, what a tie means, and what "k of n" counts
    for words in (
        "a unit's list of its top 2 sequences is cut at the weakest one kept",
        "exactly the same peak activation as that last one",
        "arbitrary (seeded random) choice",
        '"k of n" means n sequences share that activation and k of the unit\'s windows were '
        "picked among them",
    ):
        assert words in text, words
    assert "tie at the cut" not in text and "ties at cut" not in text
    assert kept_at_cut(profiles.windows[profiles.windows["neuron"] == 0]) == 2
    assert kept_at_cut(profiles.windows[profiles.windows["neuron"] == 2]) == 1
    assert tie_words(2, 2, 4) == (
        "4 sequences share the top peak value, so all 2 windows are a random (seeded) pick "
        "among them"
    )
    assert tie_words(20, 5, 12) == (
        "12 sequences share the peak value of the last window kept, so 5 of the 20 windows "
        "are a random (seeded) pick among them"
    )
    assert tie_words(20, 1, 1) == ""


def test_logos_of_units_with_the_same_windows_are_one_panel(tmp_path, monkeypatch):
    profiles = tied_profiles()
    figures = []
    monkeypatch.setattr(
        "kneurons.profiles.figures.save_figure", lambda fig, *a, **k: figures.append(fig)
    )
    plot_logos(profiles.windows, profiles.table, 1, tmp_path / "logo.png", title="t")
    (fig,) = figures
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert len(titles) == 2
    assert titles[0].startswith("ranks 0, 1 (2 units with the same windows: L0 #0, L0 #1)")
    assert titles[0].endswith("\n4 sequences share the top peak value, so all 2 windows are a "
                              "random (seeded) pick among them")  # fmt: skip
    assert titles[1] == "rank 2: layer 1, neuron 2"


# --- end to end: the job's core on a tiny model -------------------------------------------


@pytest.fixture
def w_detector(tiny_model):
    """Layer 0's query unit 0 fires on tryptophan only (as in test_residues): every token but W
    embeds to zero, and the unit's weights are W's layer-normed embedding."""
    enc = tiny_model.encoder
    w = alphabet().get_idx("W")
    with torch.no_grad():
        signature = torch.randn(enc.embed_dim, generator=torch.Generator().manual_seed(0))
        enc.embed_tokens.weight.zero_()
        enc.embed_tokens.weight[w] = signature
        q = enc.layers[0].self_attn.q_proj
        q.weight[0] = enc.layers[0].self_attn_layer_norm(signature * (1 - 0.15 * 0.8))
        q.bias.zero_()
    return tiny_model


def planted_examples(n=12, motif="WCHWM", seed=0):
    """Background without W, the motif planted once per sequence; its sites table."""
    rng = random.Random(seed)
    background = [a for a in AMINO_ACIDS if a != "W"]
    rows, sites = [], []
    for i in range(n):
        length = rng.randint(25, 40)
        seq = [rng.choice(background) for _ in range(length)]
        start = rng.randint(0, length - len(motif))
        seq[start : start + len(motif)] = motif
        rows.append({"accession": f"S{i}", "sequence": "".join(seq), "label": i % 2})
        sites.append([f"S{i}", "motif", start + 1, start + len(motif)])
    return pd.DataFrame(rows), pd.DataFrame(sites, columns=SITE_COLUMNS)


def test_profiles_of_a_motif_detector_end_to_end(w_detector, tmp_path):
    examples, sites = planted_examples()
    units = pd.concat(
        [
            units_frame(
                ("integrated_gradients", "query", 0, 0), ("integrated_gradients", "key", 1, 3)
            ),
            units_frame(("random-0", "query", 1, 5), ("random-0", "ffn_in", 0, 2)),
        ],
        ignore_index=True,
    )
    profiles = profile_neurons(w_detector, alphabet(), examples, units, sites, top_k=5,
                               half_width=2, max_tokens=100)  # fmt: skip
    windows, table = profiles.windows, profiles.table
    assert list(windows.columns) == list(WINDOW_COLUMNS)
    assert list(profiles.composition.columns) == list(COMPOSITION_COLUMNS)
    kinds = ["n_inside_motif", "overlap_motif", "expected_motif", "enrichment_motif", "p_motif"]
    assert list(table.columns) == [
        *UNIT_COLUMNS[:1], "method_family", *UNIT_COLUMNS[1:], "score", "cutoff_ties", "n_windows",
        "mean_response", "top_class", "top_class_share", "top_residues", "top_residue",
        "top_log2_enrichment", *kinds,
    ]  # fmt: skip
    assert len(table) == 4 and (table["n_windows"] == 5).all()
    assert table["cutoff_ties"].iloc[0] == 12  # the detector's W peak: the same everywhere
    assert windows.groupby(["method", "layer_type", "layer", "neuron"]).size().eq(5).all()
    assert not windows.duplicated(["method", "layer_type", "layer", "neuron", "accession"]).any()
    # every window is its sequence's residues around the peak
    seqs = dict(zip(examples["accession"], examples["sequence"], strict=True))
    for w in windows.itertuples():
        assert w.window == seqs[w.accession][w.window_start - 1 : w.window_end]
        assert w.residue == seqs[w.accession][w.position - 1]
    # chance: 5 motif residues per sequence
    assert profiles.expected["motif"] == pytest.approx(
        5 * 12 / examples["sequence"].str.len().sum()
    )
    assert table["expected_motif"].eq(profiles.expected["motif"]).all()
    # the W detector peaks on the motif's first W in every sequence
    detector = windows[windows["layer_type"].eq("query") & windows["layer"].eq(0)]
    assert (detector["residue"] == "W").all() and (detector["peak_sites"] == "motif").all()
    row = table[table["layer_type"].eq("query") & table["layer"].eq(0)].iloc[0]
    assert (row["n_inside_motif"], row["overlap_motif"]) == (5, 1.0)
    assert row["p_motif"] == pytest.approx(profiles.expected["motif"] ** 5)
    assert row["top_residue"] == "W"  # never in the background but the motif: enriched most
    # the forward pass agrees with the modules' outputs captured directly
    tokens = tokenize(alphabet(), examples["sequence"].tolist())
    peaks = scan_peaks(w_detector, alphabet(), examples["sequence"].tolist(), units)
    direct = []
    with captured_outputs(
        w_detector, [("query", 0), ("key", 1), ("query", 1), ("ffn_in", 0)]
    ) as out:
        for tok in tokens:
            w_detector(tok.unsqueeze(0))
            direct.append(
                np.stack(
                    [
                        out[(u.layer_type, u.layer)][1:-1, 0, u.neuron].numpy()
                        for u in units.itertuples()
                    ],
                    axis=1,
                )
            )
    expected_peaks = peaks_of(direct, units)
    np.testing.assert_array_equal(peaks.index, expected_peaks.index)
    np.testing.assert_allclose(peaks.activation, expected_peaks.activation, rtol=1e-5, atol=1e-6)
    # markdown and logos
    text = profiles_markdown(profiles, "tiny")
    assert "## query: integrated_gradients" in text and "## ffn_in: random-0" in text
    assert "100% of the top 2 units' 10 windows" not in text  # pooled per (method, layer type)
    assert (
        "integrated_gradients, query: 100% of the top 1 units' 5 windows peak in a planted motif"
        in text
    )
    path = tmp_path / "logo.png"
    plot_logos(windows, table[table["method"] == "integrated_gradients"], 2, path, title="t")
    assert path.stat().st_size > 0
