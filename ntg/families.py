"""The built-in generator families by name: the one list the CLI help, the zoo, the demo and the benchmarks read.

A light module (no torch): ``ntg --help`` and the benchmarks' argument parsers read it without importing the models.
Each class declares its own name with ``@register("name")`` (:mod:`ntg.models.base`); a test checks that every name
here is registered and that the neural ones are :class:`~ntg.models.neural.NeuralGenerator` subclasses. A user's
own family registers with the same decorator and is not listed here.
"""

from __future__ import annotations

#: the network families, trained by the one loop (``ntg.models.fitting``)
NEURAL_FAMILIES: tuple[str, ...] = ("transformer", "ssm", "diffusion")
#: the classical baselines, fitted in closed form
BASELINE_FAMILIES: tuple[str, ...] = ("bootstrap", "marginals", "markov", "gmm")
FAMILIES: tuple[str, ...] = BASELINE_FAMILIES + NEURAL_FAMILIES
