"""Sentences and tables for people: README blocks, study summaries. Reads results (dataclasses
from `analysis/` or their `to_dict()` files) and renders Markdown; computes nothing new."""
