"""What ``ntg evaluate`` can be asked for: its axes, profiles, classifiers and low-data fractions.

Plain constants with no imports, so that the command line builds its choices and help from the same lists the
evaluation checks against without loading numpy, torch or scikit-learn.
"""

from __future__ import annotations

AXES = ("fidelity", "tstr", "augmentation", "privacy", "cost")  # report order
FAST_AXES = ("fidelity", "tstr", "privacy")  # what a sweep trial runs (``--profile fast``)
PROFILES = ("full", "fast")
CLASSIFIER_NAMES = ("rf", "cnn")  # Random Forest (the paper's), 1-D CNN; ntg.evaluation.classifiers builds them
FRACTIONS = (0.01, 0.05, 0.10, 0.25)  # shares of the training split the low-data subsets keep

__all__ = ["AXES", "CLASSIFIER_NAMES", "FAST_AXES", "FRACTIONS", "PROFILES"]
