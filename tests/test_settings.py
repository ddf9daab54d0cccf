"""Settings declared once: every family and TrainConfig refuse wrong types, out-of-range values and unknown keys."""

from __future__ import annotations

import pytest

from ntg.data.schema import MAX_PACKETS
from ntg.errors import NtgError
from ntg.models import GENERATORS, create_generator
from ntg.models.fitting import TrainConfig
from ntg.models.settings import Setting, check_settings, family_settings, settings_help, train_settings
from ntg.training.config import split_config

BUILT_IN = ("bootstrap", "marginals", "markov", "gmm", "transformer", "ssm", "diffusion")


def test_built_in_families_are_the_registry():
    assert set(BUILT_IN) <= set(GENERATORS)


@pytest.mark.parametrize("family", BUILT_IN)
def test_every_constructor_argument_is_declared_with_help_and_a_valid_default(family):
    settings = family_settings(family)
    assert list(settings) == list(create_generator(family).get_config())
    for s in settings.values():
        assert isinstance(s, Setting) and s.help, f"{family}.{s.name} lacks help"
        assert s.kind in (int, float, str, bool)
        assert s.check(s.default, f"model.{s.name}") == s.default
    assert settings["n_packets"].low == 1 and settings["n_packets"].high == MAX_PACKETS


def _bad_values(s: Setting) -> list[object]:
    """A wrong type and, where there is a range or choices, a value outside it."""
    bad: list[object] = [[1, 2]] if s.kind is str else ["abc"]
    if s.choices is not None:
        bad.append("nonsense" if s.kind is str else 99)
    elif s.low is not None:
        bad.append(s.low if s.open_low else s.low - 1)
    if s.high is not None and s.choices is None:
        bad.append(s.high if s.open_high else s.high + 1)
    return bad


@pytest.mark.parametrize("family", BUILT_IN)
def test_wrong_types_and_out_of_range_values_are_refused_naming_the_key(family):
    for s in family_settings(family).values():
        for value in _bad_values(s):
            with pytest.raises(NtgError, match=rf"model\.{s.name}=") as err:
                check_settings("model", family, {s.name: value})
            assert f"ntg train --family {family} --help" in str(err.value)
            with pytest.raises(NtgError, match=rf"model\.{s.name}="):
                create_generator(family, **{s.name: value})


@pytest.mark.parametrize("family", BUILT_IN)
def test_unknown_keys_point_to_the_family_help(family):
    with pytest.raises(NtgError, match=r"unknown .*setting.*\['widht'\].*ntg train --family") as err:
        create_generator(family, widht=3)
    assert family in str(err.value)


def test_the_message_says_the_expected_type_and_range():
    with pytest.raises(NtgError) as err:
        create_generator("transformer", d_model="abc")
    message = str(err.value)
    assert "model.d_model='abc'" in message and "an integer" in message and ">= 2" in message


@pytest.mark.parametrize("family,values", [
    ("transformer", {"d_model": 0}), ("transformer", {"n_layers": 0}), ("transformer", {"n_heads": 0}),
    ("ssm", {"d_model": 0}), ("ssm", {"n_layers": 0}), ("diffusion", {"n_heads": 0}),
    ("diffusion", {"d_model": 0}), ("gmm", {"components": 0}), ("markov", {"order": 3}),
    ("markov", {"n_packets": 0}), ("bootstrap", {"n_packets": MAX_PACKETS + 1}), ("transformer", {"top_p": 0}),
    ("transformer", {"d_model": True}), ("diffusion", {"dropout": float("nan")}),
])
def test_constructors_refuse_nonsense(family, values):
    with pytest.raises(NtgError, match=f"model.{next(iter(values))}="):
        GENERATORS[family](**values)


def test_cross_field_constraints_are_checked_by_the_constructors():
    with pytest.raises(NtgError, match="n_heads"):
        create_generator("transformer", d_model=64, n_heads=5)
    with pytest.raises(NtgError, match="n_heads"):
        create_generator("diffusion", d_model=64, n_heads=3)
    with pytest.raises(NtgError, match="sampling_steps"):
        create_generator("diffusion", timesteps=10, sampling_steps=20)


def test_values_are_coerced_to_the_declared_type():
    gen = create_generator("transformer", d_model=64.0, n_heads=4, top_p=1)
    assert gen.d_model == 64 and isinstance(gen.d_model, int) and isinstance(gen.top_p, float)
    assert check_settings("model", "gmm", {"reg_covar": 1}) == {"reg_covar": 1.0}
    with pytest.raises(NtgError, match="model.d_model=64.5"):
        create_generator("transformer", d_model=64.5)


@pytest.mark.parametrize("values,key", [
    ({"lr": -1e-3}, "lr"), ({"lr": 0}, "lr"), ({"epochs": 0}, "epochs"), ({"epochs": "abc"}, "epochs"),
    ({"batch_size": 2.5}, "batch_size"), ({"val_fraction": 1.0}, "val_fraction"), ({"bf16": "yes"}, "bf16"),
    ({"max_train_flows": 0}, "max_train_flows"), ({"warmup": -0.1}, "warmup"), ({"device": 3}, "device"),
])
def test_train_settings_refuse_wrong_types_and_ranges(values, key):
    with pytest.raises(NtgError, match=rf"train\.{key}="):
        TrainConfig.from_dict(values)
    with pytest.raises(NtgError, match=rf"train\.{key}="):
        TrainConfig(**values)


def test_train_settings_accept_optional_and_coerce():
    config = TrainConfig.from_dict({"max_train_flows": None, "epochs": 3.0, "lr": 1})
    assert config.max_train_flows is None and config.epochs == 3 and isinstance(config.lr, float)
    assert list(train_settings()) == list(TrainConfig().to_dict())
    with pytest.raises(NtgError, match=r"unknown train setting.*\['epoch'\].*--help"):
        split_config(None, ["train.epoch=3"])
    with pytest.raises(NtgError, match=r"train\.epochs='abc'"):
        split_config(None, ["train.epochs=abc"])


def test_settings_help_lists_model_and_train_settings_with_ranges():
    text = settings_help("transformer")
    assert "model.d_model" in text and "160" in text and ">= 2" in text
    assert "model.sample_precision" in text and "'float32'" in text
    assert "train.lr" in text and "> 0" in text and "train.val_fraction" in text and "[0, 1)" in text
    assert f"1..{MAX_PACKETS}" in text
