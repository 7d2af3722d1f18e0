"""Training loops and the metrics they report."""
