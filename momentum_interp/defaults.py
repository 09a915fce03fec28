"""The one seed convention: every analysis command, the demo, the report, the notebooks and the
Python API draw their data from `DEFAULT_SEED` unless told otherwise, and every output states
the seed and the data it was computed on."""

DEFAULT_SEED = 0
# Repeated-token sequences `score` ranks heads on, and the fixed ranking set `trace`, the demo
# and the report choose heads from (whatever seed their own data uses).
SCORE_SEQUENCES = 256
# Held-out induction sequences the demo measures accuracy on and `trace` decomposes.
EVAL_SEQUENCES = 512
TRACE_SEQUENCES = 256
CONFIDENCE = 0.95
