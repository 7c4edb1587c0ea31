"""Stage 6, classes: per-class suppression and amplification of each class's own top units."""
