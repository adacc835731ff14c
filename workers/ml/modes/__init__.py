"""One module per training mode, each around the shared loop in ``workers.ml.fit``."""
