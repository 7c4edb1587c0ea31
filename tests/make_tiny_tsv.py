"""Write the tiny UniProt-format TSV used by tests and by `tests/config/tiny.yaml`.

Run `python tests/make_tiny_tsv.py` to regenerate tests/data/tiny_uniprot.tsv; a test checks
that the committed file equals what this generator writes.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
TINY_TSV = Path(__file__).resolve().parent / "data" / "tiny_uniprot.tsv"


def write_uniprot_tsv(path: Path, n_per_class: int = 20, seed: int = 0) -> Path:
    """A deterministic UniProt-style TSV with the awkward cases real downloads have.

    Classes 1-3 each get a planted 5-mer so that a tiny model can learn something; the file also
    holds partial and multiple ECs, a row spanning two classes, lowercase text, X and U residues,
    a row with an invalid residue, and an over-long sequence.
    """
    rng = random.Random(seed)
    motifs = {"1": "WCWHW", "2": "YYPYY", "3": "KMKMK"}
    ecs = {
        "1": ["1.1.1.1", "1.2.-.-", "1.14.13.n1"],
        "2": ["2.7.11.1", "2.3.1.-"],
        "3": ["3.4.21.4", "3.1.-.-; 3.2.1.1"],
    }
    rows = []
    for label, motif in motifs.items():
        for i in range(n_per_class):
            length = rng.randint(30, 60)
            seq = [rng.choice(AMINO_ACIDS) for _ in range(length)]
            pos = rng.randint(0, length - len(motif))
            seq[pos : pos + len(motif)] = motif
            rows.append((f"P{label}{i:04d}", ecs[label][i % len(ecs[label])], "".join(seq)))
    rows[0] = (rows[0][0], rows[0][1], rows[0][2].lower())
    rows[1] = (rows[1][0], rows[1][1], rows[1][2][:5] + "XU" + rows[1][2][7:])
    rows[2] = (rows[2][0], rows[2][1], "M" * 1500)  # cropped to max_length
    rows.append(("Q0000A", "1.1.1.1; 2.7.1.1", "MKV" * 12))  # spans two classes: dropped
    rows.append(("Q0000B", "3.4.21.4", "MKV*LL" * 6))  # invalid residue: dropped
    rows.append(("Q0000C", "", "MKVLLA" * 6))  # no EC: dropped
    rng.shuffle(rows)
    with open(path, "w") as fh:
        fh.write("Sequence\tEntry\tOrganism\tEC number\n")  # any column order, extra columns
        for acc, ec, seq in rows:
            fh.write(f"{seq}\t{acc}\tHomo sapiens\t{ec}\n")
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else TINY_TSV
    out.parent.mkdir(parents=True, exist_ok=True)
    write_uniprot_tsv(out)
    print(out)
