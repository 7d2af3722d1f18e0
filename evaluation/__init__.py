"""Scoring class maps: confusion-matrix metrics, garment groups, bootstrap intervals, test-time augmentation."""
