"""Low-data augmentation: stratified fractions, SMOTE / hand-crafted / synthetic augmenters, result rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from evaluation_data import cesnet_flows, constructed_flows, random_split

from ntg.data.schema import FlowTable
from ntg.evaluation.augmentation import (
    METHODS,
    augmentation_targets,
    handcrafted_augment,
    run_augmentation,
    smote_augment,
    stratified_fraction,
)
from ntg.models.base import create_generator


@pytest.fixture(scope="module")
def real_with_rare_class(datasets_root: Path) -> tuple[FlowTable, FlowTable]:
    """Real CESNET flows (train/test halves of 1,200) plus a rare third class of 4 training flows."""
    flows = cesnet_flows(datasets_root, n_packets=10)
    keep = np.random.default_rng(0).permutation(len(flows))[:1200]
    train, test = random_split(flows.take(np.sort(keep)), seed=1)
    labels = train.labels.copy()
    labels[:4] = "Rare"
    train.meta["label"] = labels
    return train, test


def _counts(flows: FlowTable) -> dict[str, int]:
    return dict(zip(*np.unique(flows.labels.astype(str), return_counts=True), strict=True))


def test_stratified_fraction_keeps_one_flow_per_class_and_is_seeded(real_with_rare_class) -> None:
    train, _ = real_with_rare_class
    full = _counts(train)
    for fraction in (0.01, 0.05, 0.25):
        subset = stratified_fraction(train, fraction, seed=4)
        counts = _counts(subset)
        assert set(counts) == set(full)
        assert all(counts[c] == max(1, round(fraction * full[c])) for c in full)
        assert subset.to_frame().equals(stratified_fraction(train, fraction, seed=4).to_frame())
    other = stratified_fraction(train, 0.05, 1).to_frame()
    assert not stratified_fraction(train, 0.05, 0).to_frame().equals(other)


def test_smote_handles_a_class_of_one_flow_and_tiny_classes() -> None:
    single = constructed_flows([[100, 200, 300, 0]], direction=[0, 1, 0, 0], iat=0.01, label="one")
    pair = constructed_flows([[10, 20, 30, 40], [12, 22, 32, 42]], [0, 1, 1, 0], iat=0.02, label="two")
    big = constructed_flows(np.arange(40).reshape(10, 4) + 500, direction=[1, 0, 1, 0], iat=0.1, label="big")
    subset = FlowTable.concat([single, pair, big])
    missing = augmentation_targets(subset, min_target=12)
    assert missing == {"one": 11, "two": 10, "big": 2}
    new = smote_augment(subset, missing, n_packets=4, seed=0)
    new.validate()
    assert _counts(new) == missing
    one = new.where(label="one")
    np.testing.assert_array_equal(one.payload, np.repeat(single.payload, 11, axis=0))  # copies of its flow
    two = new.where(label="two")
    assert np.all((two.payload >= 10) & (two.payload <= 42))  # interpolated between its two flows
    assert np.all(two.direction == [[0, 1, 1, 0]])


def test_handcrafted_augmentations_drop_scale_and_shift() -> None:
    base = constructed_flows([[100, 200, 300, 400, 500]] * 3, direction=[0, 1, 0, 1, 0], iat=0.1, label="a")
    new = handcrafted_augment(base, {"a": 300}, n_packets=5, seed=0)
    new.validate()
    assert len(new) == 300 and set(new.labels) == {"a"}
    dropped = new.length == 4
    gaps = new.iat[:, 1:]
    uniform = np.all(np.isclose(gaps, gaps[:, :1]), axis=1)
    scaled = ~dropped & uniform & ~np.isclose(gaps[:, 0], 0.1)
    shifted = ~dropped & ~uniform
    assert dropped.sum() > 50 and scaled.sum() > 50 and shifted.sum() > 50  # all three transforms are used
    # a drop removes one non-first packet and merges its gap into the next packet's
    for row in np.flatnonzero(dropped)[:20]:
        kept = new.payload[row, :4].tolist()
        assert kept[0] == 100 and len(set(kept) - {100, 200, 300, 400, 500}) == 0 and new.payload[row, 4] == 0
    last_dropped = np.all(new.payload[:, :4] == [100, 200, 300, 400], axis=1)
    expected = np.where(last_dropped, 0.3, 0.4)  # the last packet's gap leaves with it; others merge
    np.testing.assert_allclose(new.iat[dropped].sum(axis=1), expected[dropped])
    # inter-arrival scaling multiplies every gap by one factor in [0.5, 2]
    ratios = gaps[scaled, 0] / 0.1
    assert ratios.min() >= 0.5 - 1e-9 and ratios.max() <= 2 + 1e-9
    # a time shift moves one packet: one gap changes (the last packet) or two neighbours keep their sum
    for row in np.flatnonzero(shifted):
        changed = np.flatnonzero(~np.isclose(gaps[row], 0.1))
        assert len(changed) in (1, 2)
        if len(changed) == 2:
            assert changed[1] == changed[0] + 1 and np.isclose(gaps[row, changed].sum(), 0.2)
        else:
            assert changed[0] == 3  # the last packet moved (it has no next gap to give the time to)


def test_run_augmentation_has_a_row_for_every_fraction_and_method(real_with_rare_class) -> None:
    train, test = real_with_rare_class
    full_generator = create_generator("marginals").fit(train)

    def fit_on_fraction(subset: FlowTable, seed: int):
        return create_generator("marginals", seed=seed).fit(subset)

    fractions = (0.01, 0.05, 0.1, 0.25)
    result = run_augmentation(
        train, test, synthetic_source=full_generator, fraction_generator=fit_on_fraction,
        fractions=fractions, seeds=(0, 1), classifier="rf", n_packets=10,
        classifier_options={"n_estimators": 30},
    )
    rows = {(r["fraction"], r["method"]): r for r in result["rows"]}
    assert set(rows) == {(f, m) for f in fractions for m in METHODS}
    assert result["skipped"] == {}
    for (fraction, _method), row in rows.items():
        assert row["macro_f1"]["n"] == 2 and 0.0 <= row["macro_f1"]["mean"] <= 1.0
        assert row["macro_f1"]["mean"] == pytest.approx(np.mean(row["per_seed"]))
        base = rows[(fraction, "real_only")]["per_seed"]
        gains = [(v - b) / b for v, b in zip(row["per_seed"], base, strict=True)]
        assert row["gain"]["mean"] == pytest.approx(np.mean(gains))
        assert row["gain"]["std"] == pytest.approx(np.std(gains))
    # every augmenting method trains on the same, larger set: subset + (T - n_c) flows per class
    smallest = rows[(0.01, "real_only")]["train_flows"]
    for method in ("real+synthetic_full", "real+synthetic_fraction", "real+smote", "real+handcrafted"):
        assert rows[(0.01, method)]["train_flows"] > smallest
        assert rows[(0.01, method)]["train_flows"] == rows[(0.01, "real+smote")]["train_flows"]
    assert rows[(0.25, "real_100")]["train_flows"] == len(train)
    # the ceiling (all real flows) beats 1 % real flows
    assert rows[(0.01, "real_100")]["macro_f1"]["mean"] > rows[(0.01, "real_only")]["macro_f1"]["mean"]


def test_missing_sources_still_give_rows_with_reasons(real_with_rare_class) -> None:
    train, test = real_with_rare_class
    options = {"n_estimators": 10}
    result = run_augmentation(train, test, fractions=(0.05,), seeds=(0,), classifier_options=options)
    rows = {r["method"]: r for r in result["rows"]}
    assert set(rows) == set(METHODS)
    assert rows["real+synthetic_full"]["macro_f1"]["mean"] is None
    assert set(result["skipped"]) == {"real+synthetic_full", "real+synthetic_fraction"}


def test_synthetic_pool_samples_each_class_once_and_grows_by_the_difference(real_with_rare_class) -> None:
    from ntg.evaluation.augmentation import SyntheticPool

    train, _ = real_with_rare_class
    gen = create_generator("marginals").fit(train)
    calls: list[int] = []
    original = gen.sample

    def counting_sample(n, label=None, seed=None):
        calls.append(n)
        return original(n, label=label, seed=seed)

    gen.sample = counting_sample  # type: ignore[method-assign]
    classes = sorted(set(train.labels))
    pool = SyntheticPool(gen, seed=0)
    small = pool.take({c: 5 for c in classes})
    again = pool.take({c: 3 for c in classes})  # a smaller need is served from the pool
    large = pool.take({c: 8 for c in classes})  # a larger one samples only the difference
    assert calls == [5 * len(classes), 3 * len(classes)]
    assert len(small) == 5 * len(classes) and len(again) == 3 * len(classes) and len(large) == 8 * len(classes)
    for c in classes:
        first5 = small.take(small.labels == c)
        first3 = again.take(again.labels == c)
        assert np.array_equal(first5.payload[:3], first3.payload)
    large.validate()


def test_the_refit_on_a_fraction_sees_the_captures_and_the_caller_keeps_its_columns(real_with_rare_class) -> None:
    """The refit's data rules read the ``capture`` column; the classifier's label-only copies must not strip it."""
    train, test = real_with_rare_class
    train = train.first(10)  # already as long as the classifier's flows: the table it is given, not a copy
    train.meta["capture"] = [f"capture-{i % 7}" for i in range(len(train))]
    seen: list[list[str]] = []

    def fit_on_fraction(subset: FlowTable, seed: int):
        seen.append(list(subset.meta.columns))
        return create_generator("marginals", seed=seed).fit(subset)

    run_augmentation(train, test, fraction_generator=fit_on_fraction, fractions=(0.05,), seeds=(0,),
                     n_packets=10, classifier_options={"n_estimators": 10})
    assert seen and all("capture" in columns for columns in seen)
    assert "capture" in train.meta.columns
