"""``ntg.families`` is the one list of built-in family names: it matches the registered classes and loads light."""

from __future__ import annotations

import subprocess
import sys

from ntg.families import BASELINE_FAMILIES, FAMILIES, NEURAL_FAMILIES


def test_the_list_is_exactly_the_built_in_registered_families_and_says_which_are_neural() -> None:
    import ntg.models  # noqa: F401  (registers the built-in families)
    from ntg.models.base import GENERATORS
    from ntg.models.neural import NeuralGenerator

    built_in = {name for name, cls in GENERATORS.items() if cls.__module__.startswith("ntg.")}
    assert built_in == set(FAMILIES) and len(FAMILIES) == len(set(FAMILIES))
    assert not set(NEURAL_FAMILIES) & set(BASELINE_FAMILIES)
    for family in FAMILIES:
        assert issubclass(GENERATORS[family], NeuralGenerator) == (family in NEURAL_FAMILIES), family


def test_the_list_and_the_train_help_load_without_torch() -> None:
    code = ("import sys, ntg.families, ntg.cli.train; assert 'torch' not in sys.modules, 'torch imported'; "
            "print(ntg.cli.train.FAMILIES_HELP)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == " | ".join(NEURAL_FAMILIES + BASELINE_FAMILIES).split()
