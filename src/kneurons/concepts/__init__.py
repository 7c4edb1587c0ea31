"""Concepts stage (after profiles): each unit, neuron or SAE latent, as a detector of a known
concept's residues (a planted motif, an annotated site kind): per-residue precision, recall and
F1 with the threshold and the best unit chosen on validation and reported on test
(`matching`), and the tables and page that put the best neuron beside the best latent
(`report`)."""
