"""Stage 3, scoring: every unit's score (activation, integrated gradients, random) and the score
files."""
