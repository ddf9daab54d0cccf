"""Listing, comparing and indexing published generators from their model cards.

The zoos here are real local zoos (one git repository per model, committed with ``ntg.zoo.local`` as
``publish`` does, cards built with huggingface_hub's ``ModelCard`` by ``ntg.zoo.card.build_card``); the metric
values are chosen so the fronts and hypervolumes can be checked by hand.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import moocore
import numpy as np
import pandas as pd
import pytest

from ntg.cli import main
from ntg.errors import NtgError
from ntg.zoo.card import build_card
from ntg.zoo.catalog import compare, list_generators, repo_ids
from ntg.zoo.index import write_index
from ntg.zoo.local import commit_folder, update_index

NS = "ntg-test"


def publish_card(zoo: Path, repo_id: str, *, family: str, dataset: str, sweep: str, metrics: dict[str, float],
                 model_dir: Path | None = None, card: str | None = None) -> str:
    """Commit a repo (a generator folder's files if given, plus a card) to the local zoo and index it."""
    staged = zoo.parent / f".stage-{repo_id.replace('/', '--')}"
    shutil.rmtree(staged, ignore_errors=True)
    if model_dir is not None:
        shutil.copytree(model_dir, staged)
    staged.mkdir(parents=True, exist_ok=True)
    info = {"repo_id": repo_id, "family": family, "dataset": dataset, "sweep": sweep, "trial_id": "t0001",
            "objectives": {"fidelity": metrics.get("fidelity_score", 0.0)}, "hardware": "test CPU"}
    text = card if card is not None else str(build_card(info, metrics, f"# {repo_id}\n\nA test generator."))
    (staged / "README.md").write_text(text)
    commit = commit_folder(zoo, repo_id, staged, f"publish {repo_id}")
    update_index(zoo, [info])
    shutil.rmtree(staged)
    return commit


# (repo, family, dataset, sweep, flops_per_flow, fidelity_score)
MODELS = [
    ("ntg-markov-iot-00000001", "markov", "iot", "sweep-a", 1e3, 0.50),
    ("ntg-transformer-iot-00000002", "transformer", "iot", "sweep-a", 1e4, 0.30),
    ("ntg-transformer-iot-00000003", "transformer", "iot", "sweep-a", 1e5, 0.35),  # dominated by ...02
    ("ntg-markov-iot-00000004", "markov", "iot", "sweep-b", 1e3, 0.60),  # dominated by ...01 (not in its sweep)
    ("ntg-diffusion-iot-00000005", "diffusion", "iot", "sweep-b", 1e5, 0.20),
    ("ntg-ssm-cesnet-00000006", "ssm", "cesnet", "sweep-c", 2e4, 0.40),
]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    zoo = tmp_path_factory.mktemp("zoo") / "local"
    for name, family, dataset, sweep, flops, fidelity in MODELS:
        metrics = {"fidelity_score": fidelity, "fidelity_static": fidelity / 2, "tstr_macro_f1": 1 - fidelity,
                   "copy_rate": 0.01, "parameters": flops / 10, "flops_per_flow": flops}
        publish_card(zoo, f"{NS}/{name}", family=family, dataset=dataset, sweep=sweep, metrics=metrics)
    publish_card(zoo, "other-org/ntg-markov-iot-0000000a", family="markov", dataset="iot", sweep="sweep-z",
                 metrics={"fidelity_score": 0.9, "flops_per_flow": 10.0})
    return zoo


def test_list_reads_every_card_from_the_local_zoo(zoo):
    frame = list_generators(NS, zoo_dir=zoo)
    assert list(frame["repo_id"]) == sorted(f"{NS}/{m[0]}" for m in MODELS)
    row = frame.set_index("repo_id").loc[f"{NS}/ntg-ssm-cesnet-00000006"]
    assert (row["family"], row["dataset"], row["sweep"], row["hardware"]) == ("ssm", "cesnet", "sweep-c", "test CPU")
    assert row["fidelity_score"] == pytest.approx(0.40) and row["flops_per_flow"] == pytest.approx(2e4)
    assert row["fidelity_static"] == pytest.approx(0.20) and row["parameters"] == pytest.approx(2e3)
    assert len(list_generators(zoo_dir=zoo)) == len(MODELS) + 1  # every namespace


def test_list_command_prints_a_table(zoo, capsys):
    assert main(["zoo", "list", NS, "--zoo", str(zoo), "--csv", str(zoo.parent / "list.csv")]) == 0
    out = capsys.readouterr().out
    assert "ntg-test/ntg-diffusion-iot-00000005" in out and "fidelity_score" in out and "other-org" not in out
    assert len(pd.read_csv(zoo.parent / "list.csv")) == len(MODELS)


def test_unknown_namespace_and_repo_are_one_line(zoo, capsys):
    with pytest.raises(NtgError, match="namespace 'nobody'.*no published ntg generators"):
        repo_ids("nobody", zoo_dir=zoo)
    assert main(["zoo", "list", "nobody", "--zoo", str(zoo)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ntg: error: namespace 'nobody'") and "\n" not in err
    with pytest.raises(NtgError, match="not a repo id"):
        list_generators(repos=["no-slash"], zoo_dir=zoo)
    with pytest.raises(NtgError, match="no local zoo|index.json does not exist"):
        list_generators(zoo_dir=zoo.parent / "missing")


def test_a_card_without_model_index_names_its_repo(tmp_path):
    zoo = tmp_path / "zoo"
    publish_card(zoo, f"{NS}/plain", family="markov", dataset="iot", sweep="s", metrics={},
                 card="---\nlibrary_name: ntg\n---\n\n# plain\n")
    with pytest.raises(NtgError, match=f"{NS}/plain: the model card has no model-index"):
        list_generators(zoo_dir=zoo)


def test_compare_two_sweeps_fronts_and_hypervolumes(zoo, tmp_path):
    result = compare(namespace=NS, zoo_dir=zoo, out_dir=tmp_path / "cmp", repos=[f"{NS}/{m[0]}" for m in MODELS[:5]])
    assert result["by"] == "sweep"
    models = result["generators"].set_index("repo_id")
    on_front = {r.split("-")[-1][-1] for r in models.index[models["on_front"]]}
    assert on_front == {"1", "2", "4", "5"}  # ...03 dominated within sweep-a; ...04 is alone at 1e3 in sweep-b
    # by hand: common bounds over all five (log10(1+flops) and fidelity), reference 1.1, moocore's hypervolume
    x = np.log10(1 + np.array([m[4] for m in MODELS[:5]]))
    y = np.array([m[5] for m in MODELS[:5]])
    unit = np.column_stack([(x - x.min()) / (x.max() - x.min()), (y - y.min()) / (y.max() - y.min())])
    expected = {"sweep-a": moocore.hypervolume(unit[:3], ref=[1.1, 1.1]),
                "sweep-b": moocore.hypervolume(unit[3:], ref=[1.1, 1.1])}
    assert result["hypervolume"] == pytest.approx(expected)
    assert expected["sweep-a"] != pytest.approx(expected["sweep-b"])
    assert list(result["table"]["group"]) == sorted(expected, key=expected.get, reverse=True)
    assert result["plot"].stat().st_size > 10_000 and result["plot"].read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(result["csv"])) == 5
    text = result["markdown"].read_text()
    assert "| sweep-a | 3 | 2 |" in text and "reference point 1.1" in text


def test_compare_command_groups_by_family_and_rejects_unknown_metrics(zoo, tmp_path, capsys):
    out = tmp_path / "fam"
    assert main(["zoo", "compare", "--namespace", NS, "--by", "family", "--y", "fidelity", "--zoo", str(zoo),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "transformer" in printed and "hypervolume normalisation" in printed and (out / "compare.png").is_file()
    assert main(["zoo", "compare", "--namespace", NS, "--x", "speed", "--zoo", str(zoo), "--out", str(out)]) == 2
    assert "unknown card metric 'speed'" in capsys.readouterr().err
    assert main(["zoo", "compare", "--zoo", str(zoo), "--out", str(out)]) == 2
    assert "give repo ids" in capsys.readouterr().err


def test_index_writes_a_results_table_per_dataset(zoo, tmp_path):
    paths = write_index(zoo, tmp_path / "index")
    iot = pd.read_csv(paths["results-iot"])
    assert list(iot["model"])[:2] == [f"{NS}/ntg-diffusion-iot-00000005", f"{NS}/ntg-transformer-iot-00000002"]
    assert iot["fidelity_score"].is_monotonic_increasing and len(iot) == 6  # five of ntg-test, one of other-org
    assert list(pd.read_csv(paths["results-cesnet"])["model"]) == [f"{NS}/ntg-ssm-cesnet-00000006"]
    readme = paths["readme"].read_text()
    assert "`ntg-test/ntg-ssm-cesnet-00000006` | ssm | cesnet | sweep-c | 0.4 |" in readme
    assert "[results-iot.csv](results-iot.csv)" in readme and "![fronts](front.png)" in readme
    assert paths["front"].read_bytes()[:4] == b"\x89PNG"
