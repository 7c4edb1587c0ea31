"""Stage 1, data: UniProt download and TSV reading, cleaning, labels, splits (random and
homology-aware), the planted-motif task."""
