"""Reading UniProt TSV files (plain or gzipped, as the REST API or the website writes them):
the required columns, a byte-order mark, HTML error pages saved as downloads, duplicate
accessions and, when the file has UniProt's `Length` column, rows cut short (each error names
the file and its line). Cleaning and labelling are `kneurons.data.clean`."""

from __future__ import annotations

import gzip
import zlib

import numpy as np
import pandas as pd

from kneurons.errors import DataError

# UniProt's column -> the name used from here on.
REQUIRED_COLUMNS = {"Entry": "accession", "EC number": "ec_numbers", "Sequence": "sequence"}
# The column of UniProt's TSV with the sequence length (field `length`), when present.
LENGTH_COLUMN = "Length"
# A sequence whose length differs from the `Length` column (a file cut inside its last field):
# stop the run naming the line, or drop the row (counted as `length_mismatch` by cleaning).
LENGTH_MISMATCH_MODES = ("error", "drop")


def _read_text(path) -> str:
    """The file's text, gunzipped when it starts with the gzip magic (whatever its name)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        # utf-8-sig: a byte-order mark (Excel, some editors) is not part of the first column name.
        return raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: broken or truncated gzip ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_uniprot_tsv(path, require_ec: bool = True, length_mismatch: str = "error") -> pd.DataFrame:
    """Read a UniProt TSV export (optionally gzipped) with every field as plain text.

    UniProt does not quote fields, so each line is split on tabs as it is: a protein name
    starting with a double quote must not swallow the tabs after it. A line with fewer or more
    fields than the header (a broken or cut row) is an error naming its line number, as is an
    HTML page (an error page saved in place of a download), an empty or repeated accession and,
    with `length_mismatch="error"`, a sequence whose length differs from the `Length` column (a
    file cut inside its last field); with "drop" such rows are kept here and `clean_dataset`
    drops and counts them. With `require_ec=False` (the non-enzyme table) a missing
    `EC number` column is read as empty. The frame's `attrs["path"]` is the file, which
    `clean_dataset` names in its errors.
    """
    if length_mismatch not in LENGTH_MISMATCH_MODES:
        raise DataError(
            f"length_mismatch must be one of {LENGTH_MISMATCH_MODES}, got {length_mismatch!r}"
        )
    text = _read_text(path)
    if not text.strip():
        raise DataError(f"{path}: empty file")
    head = text.lstrip()[:200].lower()
    if head.startswith(("<!doctype html", "<html", "<?xml", "<head", "<body")):
        raise DataError(
            f"{path}: an HTML/XML page, not a UniProt TSV (an error page saved as the download?)"
        )

    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    header = [c.strip() for c in lines[0].split("\t")]
    required = [c for c in REQUIRED_COLUMNS if require_ec or c != "EC number"]
    missing = [c for c in required if c not in header]
    if missing:
        found = ", ".join(header) if len(lines[0]) < 300 else lines[0][:80] + "..."
        raise DataError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)} (found: {found})"
        )
    rows, numbers = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(
                f"{path}: line {number} has {len(fields)} field(s), the header has "
                f"{len(header)} (a broken or truncated row)"
            )
        rows.append(fields)
        numbers.append(number)
    if not rows:
        raise DataError(f"{path}: no data rows")
    table = pd.DataFrame(rows, columns=header, dtype="str")
    _check_file_rows(table, numbers, path, length_mismatch)
    if "EC number" not in table.columns:
        table["EC number"] = ""
    table = table.rename(columns=REQUIRED_COLUMNS)
    table.attrs["path"] = str(path)
    return table


def line_list(numbers) -> str:
    """ "3 and 7", "3, 7 and 9"."""
    numbers = [str(n) for n in numbers]
    return numbers[0] if len(numbers) == 1 else ", ".join(numbers[:-1]) + " and " + numbers[-1]


def length_mismatches(sequence: pd.Series, length: pd.Series) -> pd.Series:
    """True where the sequence (whitespace stripped) is not as long as `length` says.

    A `length` that is not a whole number (cut to nothing, or text) is a mismatch too.
    """
    expected = pd.to_numeric(length.astype(str).str.strip(), errors="coerce")
    actual = sequence.fillna("").astype(str).str.strip().str.len()
    return pd.Series(expected.isna().to_numpy() | (expected != actual).to_numpy(), sequence.index)


def _check_file_rows(table: pd.DataFrame, numbers: list[int], path, length_mismatch: str):
    """Errors that name a line of the file: empty or repeated accession, sequence length."""
    accession = table["Entry"].str.strip()
    empty = np.flatnonzero(accession.eq("").to_numpy())
    if len(empty):
        raise DataError(f"{path}: line {numbers[empty[0]]}: empty accession")
    repeated = accession[accession.duplicated(keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        lines = [numbers[i] for i in np.flatnonzero(accession.eq(first).to_numpy())]
        raise DataError(f"{path}: duplicate accession {first!r} on lines {line_list(lines)}")
    if length_mismatch == "error" and LENGTH_COLUMN in table.columns:
        bad = np.flatnonzero(length_mismatches(table["Sequence"], table[LENGTH_COLUMN]))
        if len(bad):
            i = bad[0]
            raise DataError(
                f"{path}: line {numbers[i]}: the sequence of {accession.iloc[i]} has "
                f"{len(table['Sequence'].iloc[i].strip())} residues, its Length field says "
                f"{table[LENGTH_COLUMN].iloc[i]!r} (a file cut inside its last field?); "
                f"{len(bad)} such row(s) in all (data.length_mismatch: drop drops them)"
            )


# ---------------------------------------------------------------------------------------------
# EC numbers
