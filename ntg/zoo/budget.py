"""The cards' evaluation budget: what ``ntg zoo publish`` spends on each card's test-split evaluation.

A light module (no evaluation stack): the ``zoo publish`` help reads its defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CardBudget:
    """What a card's test-split evaluation spends (:mod:`ntg.zoo.publish`); ``fractions`` None: the full profile's."""

    split_seeds: int = 2
    augmentation_seeds: int = 2
    fractions: tuple[float, ...] | None = None

    @classmethod
    def given(cls, split_seeds: int | None = None, augmentation_seeds: int | None = None,
              fractions: tuple[float, ...] | list[float] | None = None) -> CardBudget:
        """The budget asked for, each None replaced by its default."""
        default = cls()
        return cls(default.split_seeds if split_seeds is None else split_seeds,
                   default.augmentation_seeds if augmentation_seeds is None else augmentation_seeds,
                   None if fractions is None else tuple(fractions))
