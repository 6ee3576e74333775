"""Reproducible speed and memory comparisons of graphode against torchdiffeq and others."""
