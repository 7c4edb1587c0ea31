"""Knowledge neurons of protein language models (fair-esm ESM-2)."""

__version__ = "0.1.0"
