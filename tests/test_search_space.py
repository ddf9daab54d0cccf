"""Search spaces: the shipped files load and propose configurations the families accept; every bad file gets a
one-line error naming the file, the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from ntg.errors import NtgError
from ntg.models.base import create_generator
from ntg.models.settings import TrainConfig, check_settings
from ntg.search.objectives import DEFAULT_OBJECTIVES, OBJECTIVES, parse_objectives
from ntg.search.space import DEFAULT_MAX_PARAMETERS, TrialConfig, load_spaces

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
FAMILY_FILES = sorted(SPACES.glob("*.yaml"))
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _write(tmp_path: Path, body: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def _configs(space, n: int, seed: int = 0, sampler: str = "random") -> list[TrialConfig]:
    cls = optuna.samplers.RandomSampler if sampler == "random" else optuna.samplers.TPESampler
    study = optuna.create_study(sampler=cls(seed=seed))
    configs = []
    for i in range(n):
        trial = study.ask()
        configs.append(space.suggest(trial))
        study.tell(trial, float(i % 3))
    return configs


def test_shipped_spaces_cover_every_family_and_propose_accepted_configurations() -> None:
    assert {p.stem for p in FAMILY_FILES} >= {"transformer", "ssm", "diffusion", "markov", "gmm"}
    assert (SPACES / "README.md").is_file()
    space = load_spaces(FAMILY_FILES)
    assert set(space.family_names) >= {"transformer", "ssm", "diffusion", "markov", "gmm"}
    assert space.max_parameters == DEFAULT_MAX_PARAMETERS
    seen = set()
    for config in _configs(space, 60):
        seen.add(config.family)
        assert check_settings("model", config.family, config.model) == config.model
        TrainConfig.from_dict(config.train)
        create_generator(config.family, **config.model)  # cross-field checks (heads divide the width) pass
        assert not any(name.startswith("_") for name in config.model)
    assert seen == set(space.family_names)


def test_derived_values_and_helpers(tmp_path: Path) -> None:
    path = _write(tmp_path, """
families:
  transformer:
    model:
      n_heads: {type: categorical, choices: [2, 4]}
      _head_dim: {type: int, low: 8, high: 16, step: 8}
      d_model: "n_heads * _head_dim"
      mlp_hidden: "max(64, 3 * d_model)"
      n_layers: 2
      temperature: "n_layers - 1"
    train:
      lr: {type: float, low: 1e-4, high: 1.0e-2, log: true}  # YAML 1.2 numbers
      epochs: "model.n_layers * 2"
""")
    space = load_spaces(path)
    for config in _configs(space, 12):
        assert config.model["d_model"] % config.model["n_heads"] == 0
        assert config.model["d_model"] // config.model["n_heads"] in (8, 16)
        assert config.model["mlp_hidden"] == max(64, 3 * config.model["d_model"])
        assert config.train["epochs"] == 4 and 1e-4 <= config.train["lr"] <= 1e-2
        assert set(config.model) == {"n_heads", "d_model", "mlp_hidden", "n_layers", "temperature"}
        assert isinstance(config.model["d_model"], int)
        assert config.model["temperature"] == 1.0 and isinstance(config.model["temperature"], float)  # as declared


def test_several_families_suggest_under_their_own_names_and_rebuild_from_params() -> None:
    space = load_spaces([SPACES / "transformer.yaml", SPACES / "markov.yaml"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(10):
        trial = study.ask()
        config = space.suggest(trial)
        assert trial.params["family"] == config.family
        others = [name for name in trial.params if name != "family" and not name.startswith(f"{config.family}.")]
        assert others == []
        assert space.from_params(trial.params) == config
        assert space.from_params(trial.params).key() == config.key()


def test_key_is_stable_and_distinguishes_configurations() -> None:
    a = TrialConfig("markov", {"order": 2, "iat_bins": 8}, {})
    b = TrialConfig("markov", {"iat_bins": 8, "order": 2}, {})
    c = TrialConfig("markov", {"iat_bins": 8, "order": 1}, {})
    assert a.key() == b.key() and len(a.key()) == 64 and a.key() != c.key()
    assert len({a, b, c}) == 2


def test_seeded_sampler_repeats_the_sequence() -> None:
    space = load_spaces(SPACES / "diffusion.yaml")
    first = [c.key() for c in _configs(space, 14, seed=7, sampler="tpe")]
    again = [c.key() for c in _configs(space, 14, seed=7, sampler="tpe")]
    other = [c.key() for c in _configs(space, 14, seed=8, sampler="tpe")]
    assert first == again and first != other


def test_budget_from_file_smallest_file_and_cli(tmp_path: Path) -> None:
    a = _write(tmp_path, "max_parameters: 500000\nfamilies:\n  markov:\n    model: {order: 1}\n", "a.yaml")
    b = _write(tmp_path, "max_parameters: 1.5e6  # YAML 1.2 number\nfamilies:\n  gmm:\n    model: {components: 4}\n",
               "b.yaml")
    assert load_spaces([a, b]).max_parameters == 500_000
    assert load_spaces([b]).max_parameters == 1_500_000
    assert load_spaces([a, b], max_parameters=3_000_000).max_parameters == 3_000_000


def test_to_dict_round_trips_through_the_loader(tmp_path: Path) -> None:
    space = load_spaces([SPACES / "transformer.yaml", SPACES / "gmm.yaml"])
    as_dict = space.to_dict()
    path = _write(tmp_path, yaml.safe_dump({k: v for k, v in as_dict.items() if k != "sources"}))
    again = load_spaces(path).to_dict()
    assert {k: v for k, v in again.items() if k != "sources"} == {k: v for k, v in as_dict.items() if k != "sources"}


BAD_FILES = {
    "unknown family": ("families:\n  gpt4:\n    model: {d_model: 64}\n", "families.gpt4: unknown family"),
    "unknown hyperparameter": ("families:\n  transformer:\n    model:\n      d_modle: 64\n",
                               "transformer.model.d_modle: unknown model setting"),
    "unknown train setting": ("families:\n  ssm:\n    train:\n      learning_rate: 0.001\n",
                              "ssm.train.learning_rate: unknown train setting"),
    "low > high": ("families:\n  ssm:\n    model:\n      n_layers: {type: int, low: 6, high: 2}\n",
                   "ssm.model.n_layers: low 6 > high 2"),
    "log with low <= 0": ("families:\n  ssm:\n    train:\n      lr: {type: float, low: 0, high: 0.01, log: true}\n",
                          "ssm.train.lr: log scale needs low > 0"),
    "empty choices": ("families:\n  ssm:\n    model:\n      d_state: {type: categorical, choices: []}\n",
                      "ssm.model.d_state: 'choices' must be a non-empty list"),
    "rejected constant": ("families:\n  transformer:\n    model:\n      n_heads: 0\n",
                          "model.n_heads=0 is not allowed"),
    "rejected choice": ("families:\n  ssm:\n    model:\n"
                        "      sample_precision: {type: categorical, choices: [auto, fp8]}\n",
                        "model.sample_precision='fp8' is not allowed"),
    "range outside the setting": ("families:\n  markov:\n    model:\n      n_packets: {type: int, low: 4, high: 64}\n",
                                  "markov.model.n_packets: high 64 is above the setting's maximum"),
    "open bound": ("families:\n  ssm:\n    train:\n      lr: {type: float, low: 0, high: 0.01}\n",
                   "ssm.train.lr: low 0 is below the setting's minimum"),
    "float range for an int": ("families:\n  ssm:\n    model:\n      n_layers: {type: float, low: 1, high: 4}\n",
                               "ssm.model.n_layers: n_layers is a whole number; use type: int"),
    "range for a choice": ("families:\n  gmm:\n    model:\n      covariance_type: {type: int, low: 1, high: 2}\n",
                           "gmm.model.covariance_type: covariance_type is one of"),
    "unknown type": ("families:\n  ssm:\n    model:\n      n_layers: {type: normal, low: 1, high: 4}\n",
                     "ssm.model.n_layers: 'type' must be one of"),
    "unknown distribution key": ("families:\n  ssm:\n    model:\n      n_layers: {type: int, low: 1, high: 4, stp: 1}"
                                 "\n",
                                 "unknown key(s) ['stp'] for type int"),
    "derived reads an undefined name": (
        "families:\n  transformer:\n    model:\n      d_model: 'n_heads * _width'\n",
        "transformer.model.d_model: 'n_heads * _width' reads ['model._width', 'model.n_heads']"),
    "code in an expression": ("families:\n  transformer:\n    model:\n      d_model: \"__import__('os').getpid()\"\n",
                              "transformer.model.d_model: only the functions"),
    "derived cycle": ("families:\n  ssm:\n    model:\n      _a: '_b + 1'\n      _b: '_a + 1'\n",
                      "depend on each other in a cycle"),
    "derived out of range at a corner": (
        "families:\n  transformer:\n    model:\n      n_heads: {type: categorical, choices: [2, 8]}\n"
        "      d_model: 'n_heads * 16 - 100'\n", "model.d_model=-68 is not allowed"),
    "bad budget": ("max_parameters: -5\nfamilies:\n  markov: {}\n", "max_parameters must be a positive whole number"),
    "unknown top-level key": ("max_params: 5\nfamilies:\n  markov: {}\n", "unknown top-level key(s) ['max_params']"),
    "no families": ("max_parameters: 1000\n", "'families:' must map at least one family"),
    "not YAML": ("families:\n  ssm: {model: [\n", "not valid YAML at line"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_space_file_gets_one_line_error_naming_file_and_key(tmp_path: Path, case: str) -> None:
    body, expected = BAD_FILES[case]
    path = _write(tmp_path, body, "bad.yaml")
    with pytest.raises(NtgError) as err:
        load_spaces(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(path)), message
    assert expected in message, message


def test_family_in_two_files_and_missing_file(tmp_path: Path) -> None:
    a = _write(tmp_path, "families:\n  markov: {model: {order: 1}}\n", "a.yaml")
    b = _write(tmp_path, "families:\n  markov: {model: {order: 2}}\n", "b.yaml")
    with pytest.raises(NtgError, match=r"b\.yaml: family 'markov' is also in .*a\.yaml"):
        load_spaces([a, b])
    with pytest.raises(NtgError, match=r"missing\.yaml: cannot read the search space"):
        load_spaces(tmp_path / "missing.yaml")
    with pytest.raises(NtgError, match="no search space given"):
        load_spaces([])


def test_objectives_parse_with_their_own_directions() -> None:
    assert [o.name for o in parse_objectives(None)] == list(DEFAULT_OBJECTIVES)
    parsed = parse_objectives("fidelity:min, tstr_f1,flops_per_flow:min")
    assert [(o.name, o.direction) for o in parsed] == [("fidelity", "min"), ("tstr_f1", "max"),
                                                      ("flops_per_flow", "min")]
    assert parse_objectives(["sample_flows_per_s"])[0].direction == OBJECTIVES["sample_flows_per_s"] == "max"
    for text, expected in [("fidelity:max", "is always 'min'"), ("speed", "unknown objective 'speed'"),
                           ("fidelity,fidelity", "given twice"), (" , ", "no objectives given")]:
        with pytest.raises(NtgError, match=expected):
            parse_objectives(text)
