"""Stage 8, profiles: what the top units respond to (top windows, composition, known sites)."""
