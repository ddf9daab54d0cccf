"""Every ``ntg ...`` command in README.md's bash blocks and in the ``--help`` examples runs as written.

The commands run in order in one temporary folder (the README's relative paths: data/iot, runs/tf, ...) with
``NTG_DATA_ROOT`` pointing at the real captures, as the README says to set it. Only budgets are appended
(argparse keeps the last value): one epoch on a few hundred flows, one split seed, the Random Forest only, the 1 %
low-data fraction alone (the augmentation still refits the generator on it: the path where a rare class once went
missing), two sweep trials, one split seed and the 1 % fraction with one seed for the zoo cards. Two examples
that parse to the same arguments once their budgets are appended (the README's ``evaluate ... --split-seeds 3``
and the help's ``evaluate`` without it) run once. ``./my-captures`` and ``./captures`` are a few nDPI test
captures (the README's "your captures"). A command that names a bucket (``s3://my-bucket/...``) talks to a real
local S3 server (moto's, started on first use, bucket created) through the URI's ``endpoint_override`` query,
with test credentials: the same client code as against AWS.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from conftest import DATASETS, REPO
from s3_server import CREDENTIALS, boto_client, s3_server

pytestmark = pytest.mark.slow

BUDGETS: dict[str, list[str]] = {
    "train": ["--set", "train.epochs=1", "--set", "train.max_train_flows=400", "--quiet"],
    "evaluate": ["--split-seeds", "1", "--classifiers", "rf", "--augmentation-seeds", "1", "--augmentation-fractions",
                 "0.01", "--quiet"],
    "sweep": ["--trials", "2", "--max-epochs", "1", "--concurrency", "1", "--cpus-per-trial", "1"],
    "demo": ["--quick", "--families", "markov", "--split-seeds", "1"],
    "zoo publish": ["--split-seeds", "1", "--augmentation-seeds", "1", "--augmentation-fractions", "0.01", "--quiet"],
}
NDPI_CAPTURES = ("KakaoTalk_talk", "instagram", "netflix", "pinterest", "reddit", "teams", "telegram", "tumblr",
                 "wechat", "weibo", "whatsappfiles", "zoom", "signal", "waze", "iphone")


def logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined."""
    return [line.strip() for line in re.sub(r"\\\n\s*", " ", text).splitlines()]


def readme_commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    return [shlex.split(line, comments=True) for block in blocks for line in logical_lines(block)
            if line.startswith("ntg ")]


def help_commands() -> list[list[str]]:
    from ntg.cli import build_parser

    found, parsers = [], [build_parser()]
    while parsers:
        parser = parsers.pop(0)
        found += [shlex.split(line, comments=True) for line in logical_lines(parser.epilog or "")
                  if line.startswith("ntg ")]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers += list(dict.fromkeys(action.choices.values()))
    return found


def budgeted(command: list[str]) -> list[str]:
    """The arguments after ``ntg`` with the command's budgets appended (``BUDGETS`` by subcommand, or by group and
    subcommand: ``zoo publish``)."""
    args = command[1:]
    return [*args, *BUDGETS.get(" ".join(args[:2]), BUDGETS.get(args[0], []) if args else [])]


def _parsed(args: list[str]) -> object:
    """What argparse makes of ``args`` (the arguments themselves where it exits, e.g. on ``--help``)."""
    from ntg.cli import build_parser

    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            return vars(build_parser().parse_args(args))
    except SystemExit:
        return args


def all_commands() -> list[list[str]]:
    """The README's and the help's examples, each effective invocation once."""
    kept: list[list[str]] = []
    invocations: list[object] = []
    for command in readme_commands() + help_commands():
        invocation = _parsed(budgeted(command))
        if invocation not in invocations:
            invocations.append(invocation)
            kept.append(command)
    return kept


def test_the_walk_finds_the_readme_and_help_examples() -> None:
    commands = [" ".join(c) for c in all_commands()]
    assert "ntg data prepare iot-sentinel --out data/iot" in commands
    assert any(c.startswith("ntg evaluate --data data/iot --generator runs/tf") for c in commands)
    assert len(readme_commands()) >= 7 and len(help_commands()) >= 5


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh folder like a clone's root: search_spaces/ copied, a few captures as ./my-captures and ./captures."""
    work = tmp_path_factory.mktemp("readme")
    if (REPO / "search_spaces").is_dir():
        shutil.copytree(REPO / "search_spaces", work / "search_spaces")
    ndpi = DATASETS / "ndpi" / "tests" / "cfgs" / "default" / "pcap"
    for folder in ("my-captures", "captures"):
        (work / folder).mkdir()
        for name in NDPI_CAPTURES:
            (work / folder / f"{name}.pcap").symlink_to(ndpi / f"{name}.pcap")
    (work / "home").mkdir()
    return work


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[Callable[[str], str]]:
    """``endpoint(bucket)``: the address of one local S3 server (started on the first call) holding ``bucket``."""
    with ExitStack() as stack:
        state: dict[str, str] = {}

        def endpoint(bucket: str) -> str:
            if "address" not in state:
                state["address"] = stack.enter_context(s3_server())
            client = boto_client(state["address"])
            if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                client.create_bucket(Bucket=bucket)
            return state["address"]

        yield endpoint


def _to_local_s3(argv: list[str], endpoint: Callable[[str], str]) -> list[str]:
    """``s3://BUCKET/...`` arguments pointed at the local server."""
    out = []
    for arg in argv:
        if arg.startswith("s3://"):
            arg = f"{arg}?endpoint_override={endpoint(arg[5:].split('/')[0])}&scheme=http"
        out.append(arg)
    return out


@pytest.mark.parametrize("command", all_commands(), ids=lambda c: " ".join(c[1:4]))
def test_command_runs_as_written(command: list[str], workdir: Path, s3_endpoint: Callable[[str], str]) -> None:
    env = {**os.environ, "NTG_DATA_ROOT": str(DATASETS), "NTG_CACHE": str(workdir / "home" / "cache"),
           "HOME": str(workdir / "home"), "PYTHONWARNINGS": "ignore", "RAY_AUTH_MODE": "disabled",
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **CREDENTIALS}
    argv = _to_local_s3(budgeted(command), s3_endpoint)
    result = subprocess.run([sys.executable, "-m", "ntg.cli", *argv], capture_output=True, text=True, env=env,
                            cwd=workdir, timeout=1200)
    assert result.returncode == 0, f"{shlex.join(command)}\n{result.stderr[-3000:]}"
