"""Stage 4, selection: every unit's rank in its pool, and the stability of selections."""
