"""Predicting with a trained checkpoint: a network rebuilt from the checkpoint alone, on photos of any size."""
