"""A real local S3 server for tests: moto's standalone server (``moto[server]``), spoken to over HTTP by the
real clients (pyarrow's AWS SDK in ntg and in Ray, boto3 in the checks).

:func:`s3_server` starts ``python -m moto.server`` on a free port in its own process group and stops that group
when the ``with`` block ends, even on failure; :data:`CREDENTIALS` are what moto accepts (any) and what the
driver and the Ray workers are given.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def s3_server(timeout: float = 30.0) -> Iterator[str]:
    """Yield the endpoint ``127.0.0.1:PORT`` of a fresh moto S3 server (empty: no buckets)."""
    port = _free_port()
    log = Path(tempfile.mkstemp(prefix="moto-", suffix=".log")[1])
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **CREDENTIALS})
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server not listening on {port} after {timeout:.0f} s")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.unlink(missing_ok=True)


def boto_client(endpoint: str) -> Any:
    """A boto3 S3 client of the server (a second, independent client for the checks)."""
    import boto3

    return boto3.client("s3", endpoint_url=f"http://{endpoint}", aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


def keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under ``prefix`` (all pages)."""
    found: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [item["Key"] for item in page.get("Contents", [])]
    return found
