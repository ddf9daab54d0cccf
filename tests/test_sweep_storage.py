"""`ntg sweep --out s3://...` against a real local S3 server (moto's, over HTTP; tests/s3_server.py).

The driver works in a local mirror of the URI and uploads as trials finish; Tune writes the trial checkpoints
straight to the bucket from the Ray workers (which get the credentials through the job's runtime_env, as on a
real cluster). Checked: the bucket holds the sweep after a run, a fresh machine (no mirror) resumes it,
`ntg pareto URI` reads it and uploads the front, and bad URIs fail in one line within seconds.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from s3_server import CREDENTIALS, boto_client, keys, s3_server

from ntg.search.storage import SweepStore, cache_root
from ntg.search.sweep import SweepOptions, run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(600)]
BUCKET = "ntg-sweeps"
MARKOV = """
families:
  markov:
    model:
      order: {type: categorical, choices: [1, 2]}
      payload_bins: {type: categorical, choices: [4, 8, 16]}
"""


@pytest.fixture(scope="module")
def s3(ray_cluster, tmp_path_factory):
    """(endpoint, boto3 client): a moto server with one bucket; the driver and the Ray workers hold the
    credentials, and mirrors go to a temporary cache."""
    import ray

    with s3_server() as endpoint, pytest.MonkeyPatch.context() as mp:
        for key, value in CREDENTIALS.items():
            mp.setenv(key, value)
        mp.setenv("NTG_SWEEP_CACHE", str(tmp_path_factory.mktemp("mirrors")))
        client = boto_client(endpoint)
        client.create_bucket(Bucket=BUCKET)
        ray.shutdown()  # reconnect as a job that carries the credentials to its workers
        ray.init(address=ray_cluster, log_to_driver=False,
                 runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled", **CREDENTIALS}})
        try:
            yield endpoint, client
        finally:
            ray.shutdown()
            ray.init(address=ray_cluster, log_to_driver=False,
                     runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}})


def _uri(endpoint: str, prefix: str) -> str:
    return f"s3://{BUCKET}/{prefix}?endpoint_override={endpoint}&scheme=http"


def _options(space: Path, data: Path, uri: str, n_trials: int, **extra) -> SweepOptions:
    return SweepOptions(spaces=[space], data_dir=data, n_trials=n_trials, out=uri, max_epochs=1, seed=0, **extra)


@pytest.fixture(scope="module")
def s3_sweep(s3, iot_small, tmp_path_factory):
    """A 2-trial markov sweep written to s3://ntg-sweeps/sweeps/a."""
    endpoint, client = s3
    space = tmp_path_factory.mktemp("space") / "markov.yaml"
    space.write_text(MARKOV)
    uri = _uri(endpoint, "sweeps/a")
    lines: list[str] = []
    started = time.monotonic()
    summary = run_sweep(_options(space, iot_small.root, uri, 2, concurrency=1), log=lines.append)
    print(f"s3 sweep of 2 trials: {time.monotonic() - started:.1f} s")
    return uri, space, summary, lines


def test_sweep_to_s3_puts_records_study_generators_and_checkpoints_in_the_bucket(s3, s3_sweep):
    endpoint, client = s3
    uri, _, summary, lines = s3_sweep
    assert summary["sweep_dir"] == uri and summary["trials"] == 2
    assert any(f"ntg pareto {uri}" in line for line in lines)
    found = keys(client, BUCKET, "sweeps/a/")
    names = {k[len("sweeps/a/"):] for k in found}
    assert {"sweep.json", "study.journal"} <= names
    records = sorted(n for n in names if n.startswith("trials/") and n.count("/") == 1 and n.endswith(".json"))
    assert len(records) == 2
    meta = json.loads(client.get_object(Bucket=BUCKET, Key="sweeps/a/sweep.json")["Body"].read())
    assert meta["study_storage"] == "journal:study.journal"
    for name in records:
        record = json.loads(client.get_object(Bucket=BUCKET, Key=f"sweeps/a/{name}")["Body"].read())
        if not record["metrics"].get("reused_from"):
            assert f"{record['generator_dir']}/config.json" in names  # the generator beside its record
    # Tune's checkpoints went to the bucket from the worker, not through the mirror
    assert any(n.startswith("tune/run-1/trial_") and "/checkpoint_" in n for n in names)
    assert not (SweepStore(uri).local / "tune").exists()


def test_fresh_machine_resumes_the_s3_sweep_keeping_its_trials(s3, s3_sweep, iot_small):
    endpoint, client = s3
    uri, space, _, _ = s3_sweep
    store = SweepStore(uri)
    before = {json.loads(client.get_object(Bucket=BUCKET, Key=k)["Body"].read())["trial_id"]
              for k in keys(client, BUCKET, "sweeps/a/trials/") if k.count("/") == 3 and k.endswith(".json")}
    shutil.rmtree(store.local)  # another machine: nothing local
    lines: list[str] = []
    summary = run_sweep(_options(space, iot_small.root, uri, 3, concurrency=1, resume=True), log=lines.append)
    assert summary["trials"] == 3
    assert any("2 of 3 trials done, running 1 more" in line for line in lines)
    after = {json.loads(client.get_object(Bucket=BUCKET, Key=k)["Body"].read())["trial_id"]
             for k in keys(client, BUCKET, "sweeps/a/trials/") if k.count("/") == 3 and k.endswith(".json")}
    assert before < after and len(after) == 3
    assert any(k.startswith("sweeps/a/tune/run-2/") for k in keys(client, BUCKET, "sweeps/a/tune/"))
    import optuna

    from ntg.search.sweep import STUDY_NAME, open_storage

    storage, _, _ = open_storage("journal:study.journal", store.local)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    assert len([t for t in study.trials if t.state.is_finished()]) == 3


def test_pareto_and_zoo_publish_read_the_uri_from_a_fresh_mirror(s3, s3_sweep, capsys):
    from ntg.cli import main

    endpoint, client = s3
    uri = s3_sweep[0]
    shutil.rmtree(SweepStore(uri).local, ignore_errors=True)
    assert main(["pareto", uri]) == 0
    out = capsys.readouterr().out
    assert f"uploaded to {uri}" in out
    names = set(keys(client, BUCKET, "sweeps/a/"))
    assert {"sweeps/a/front.json", "sweeps/a/front.csv"} <= names
    front = json.loads(client.get_object(Bucket=BUCKET, Key="sweeps/a/front.json")["Body"].read())
    assert front["front"] and len(front["trials"]) >= 2

    shutil.rmtree(SweepStore(uri).local)
    assert main(["zoo", "publish", uri, "--to", "me", "--dry-run"]) == 0  # finds the front's generators
    assert "ntg-markov" in capsys.readouterr().out


@pytest.mark.parametrize("bad, message", [
    ("s3://missing-bucket/x?endpoint_override={e}&scheme=http", "bucket 'missing-bucket' not found"),
    ("s3://ntg-sweeps/x?endpoint_override=127.0.0.1:{p}&scheme=http", "storage not reachable"),
    ("s3:///x", "no bucket"),
    ("s3://ntg-sweeps/x?colour=blue", "Unexpected query parameter"),
    ("ftp://host/x", "ftp:// is not storage ntg writes"),
])
def test_bad_uris_fail_in_one_line_within_seconds(s3, iot_small, tmp_path, bad, message):
    from ray_cluster import free_ports

    from ntg.errors import NtgError

    uri = bad.format(e=s3[0], p=free_ports(1)[0])
    space = tmp_path / "markov.yaml"
    space.write_text(MARKOV)
    started = time.monotonic()
    with pytest.raises(NtgError) as caught:
        run_sweep(_options(space, iot_small.root, uri, 1))
    elapsed = time.monotonic() - started
    text = str(caught.value)
    assert message in text and uri in text and "\n" not in text
    assert elapsed < 5, f"{elapsed:.1f} s"
    assert not any(cache_root().glob("x-*")), "nothing mirrored for a refused URI"
