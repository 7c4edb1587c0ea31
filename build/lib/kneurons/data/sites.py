"""Known sites of a UniProt table: the annotated active and binding sites (`ft_act_site`,
`ft_binding`, or the web columns "Active site", "Binding site") as a site table, one row per
(accession, kind, start, end) interval in UniProt's positions (rule `extract_sites`). The
planted motifs of the synthetic task come in a table with the same columns
(`kneurons.data.synthetic`); how well residue maps find the sites is
`kneurons.residues.recovery`.
"""

from __future__ import annotations

import re

import pandas as pd

_FEATURE = re.compile(r"(?:ACT_SITE|BINDING)\s+(\d+)(?:\.\.(\d+))?")


def parse_site_features(text: str) -> list[tuple[int, int]]:
    """(start, end) intervals from UniProt `ft_act_site` / `ft_binding` text.

    E.g. 'ACT_SITE 57; /note="Proton acceptor"; BINDING 100..104; /ligand="ATP"'.
    """
    return [(int(a), int(b) if b else int(a)) for a, b in _FEATURE.findall(text or "")]


def sites_from_uniprot(table: pd.DataFrame) -> pd.DataFrame:
    """Annotated active and binding sites of a UniProt table (raw or renamed columns)."""
    columns = {
        "Active site": "active_site",
        "ft_act_site": "active_site",
        "Binding site": "binding_site",
        "ft_binding": "binding_site",
    }
    accession = "Entry" if "Entry" in table.columns else "accession"
    rows = []
    for column, kind in columns.items():
        if column not in table.columns:
            continue
        for acc, text in zip(table[accession], table[column], strict=True):
            for start, end in parse_site_features(text):
                rows.append({"accession": acc, "kind": kind, "start": start, "end": end})
    return pd.DataFrame(rows, columns=["accession", "kind", "start", "end"])
