"""A test double of the Hugging Face Hub: a local HTTP server for model repos, for the real ``huggingface_hub`` client.

No hub is reachable from the test machines, so code that downloads models at run time is tested against this
server, with the real client library doing the talking. It implements exactly what ``huggingface_hub`` (2.x)
calls for ``snapshot_download`` / ``hf_hub_download`` of model repos, read from the client's source:

* ``GET /api/models/{repo_id}`` and ``GET /api/models/{repo_id}/revision/{revision}`` (``HfApi.model_info``):
  JSON with ``id``, ``sha`` (the commit ``snapshot_download`` pins), ``siblings`` (``rfilename``; with ``?blobs=true``
  also ``size``, ``blobId``, ``lfs``), ``private``, ``lastModified``.
* ``GET /api/models/{repo_id}/tree/{revision}[/{path}]?recursive=...`` (``HfApi.list_repo_tree``, which
  ``snapshot_download`` uses to list the files): a JSON list of ``{"type": "file", "path", "size", "oid"[, "lfs"]}``
  and ``{"type": "directory", "path", "oid"}``, one page (no ``Link`` header).
* ``HEAD`` / ``GET /{repo_id}/resolve/{revision}/{filename}`` (``get_hf_file_metadata`` then ``http_get``):
  a regular (git) file answers 200 with ``X-Repo-Commit``, ``ETag`` (its git blob sha1) and ``Content-Length``;
  an LFS file (weights) answers 302 with ``X-Repo-Commit``, ``X-Linked-Etag`` (its sha256), ``X-Linked-Size`` and a
  ``Location`` on a *different origin* (``localhost`` instead of ``127.0.0.1``), as the Hub redirects to its CDN;
  the client then downloads from that location without following it as a Hub redirect.
* Errors carry the ``X-Error-Code`` header ``hf_raise_for_status`` maps to exception types: ``RepoNotFound``
  (``RepositoryNotFoundError``), ``RevisionNotFound`` (``RevisionNotFoundError``), ``EntryNotFound``
  (``RemoteEntryNotFoundError``).

Uploads (answered by ``tests/hub_uploads.py``), as ``HfApi.create_repo`` and ``HfApi.upload_folder`` (without Xet:
``HF_HUB_DISABLE_XET``) make them:

* ``POST /api/repos/create`` (``{"name", "organization", ...}``): 200 with ``url``, or 409 when it exists;
* ``POST /api/models/{repo_id}/preupload/{revision}``: ``uploadMode`` "lfs" for weights, "regular" otherwise;
* ``POST /{repo_id}.git/info/lfs/objects/batch``: a basic-transfer ``upload`` action per object not stored yet;
  ``PUT /lfs-upload/{sha256}`` stores it (checked against its sha256);
* ``POST /api/validate-yaml`` (``create_commit`` sends every ``README.md`` first): 400 with ``errors`` when the
  metadata is not a YAML mapping or its ``model-index`` lacks what the Hub requires (name; per result the task
  type, dataset name and type, metrics with type and value), else 200 with no errors;
* ``POST /api/models/{repo_id}/commit/{revision}`` (NDJSON: ``header``, ``file`` base64, ``lfsFile``,
  ``deletedFile``, ``deletedFolder``): applies them and answers ``commitOid`` / ``commitUrl``.

With ``write_token`` set, API writes need ``Authorization: Bearer <write_token>`` (401 otherwise), as on the Hub;
the LFS ``PUT`` (a pre-signed storage URL on the Hub) needs none.

Every repo has one branch, ``main``, whose commit id is a hash of the repo's files and its number of commits, so
each publish or upload makes a new commit. No Xet headers are sent, so the client uses plain HTTP transfers.

Point a client at it with ``endpoint=server.endpoint`` (``snapshot_download``, ``hf_hub_download``, ``HfApi``), or
with the ``HF_ENDPOINT`` environment variable in a fresh process, or in-process with :meth:`HubServer.as_default`
(``huggingface_hub`` reads ``HF_ENDPOINT`` into ``constants.ENDPOINT`` once, at import).
"""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

from tests.hub_repo import BRANCH, Repo
from tests.hub_uploads import UploadHandlers


class HubRequestHandler(UploadHandlers, BaseHTTPRequestHandler):
    server: _Server  # type: ignore[assignment]
    # HTTP/1.0: one request per connection, so a stopped server really is unreachable (no kept-alive handler)
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args) -> None:  # noqa: A002  (quiet; requests are kept in hub.requests)
        pass

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_POST(self) -> None:
        self._write_dispatch()

    def do_PUT(self) -> None:
        self._write_dispatch()

    # ------------------------------------------------------------------ routing
    def _dispatch(self, head: bool) -> None:
        hub = self.server.hub
        url = urlsplit(self.path)
        hub.requests.append((self.command, url.path))
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        segments = url.path.lstrip("/").split("/")  # still percent-encoded: a revision may hold an encoded "/"
        try:
            if segments[:2] == ["api", "models"] and len(segments) >= 4:
                self._api_model(segments[2:], params, head)
            elif len(segments) >= 5 and segments[2] == "resolve":
                self._resolve(segments, head)
            elif segments[0] == "cdn-lfs" and len(segments) >= 5:
                self._cdn(segments[1:], head)
            else:
                self._error(404, None, f"no route for {url.path}", head)
        except BrokenPipeError:
            pass

    def _repo(self, owner: str, name: str, head: bool) -> Repo | None:
        repo_id = f"{unquote(owner)}/{unquote(name)}"
        repo = self.server.hub.repo(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found", head)
        return repo

    def _revision(self, repo: Repo, revision: str, head: bool) -> bool:
        if repo.has_revision(revision):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head, commit=None)
        return False

    def _api_model(self, rest: list[str], params: dict[str, str], head: bool) -> None:
        repo = self._repo(rest[0], rest[1], head)
        if repo is None:
            return
        rest = rest[2:]
        if not rest or rest[0] == "revision":
            revision = unquote(rest[1]) if len(rest) >= 2 else BRANCH
            if not self._revision(repo, revision, head):
                return
            blobs = params.get("blobs", "").lower() in ("1", "true")
            info = {
                "_id": repo.sha[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": repo.sha,
                "lastModified": self.server.hub.last_modified.get(repo.repo_id),
                "private": False,
                "gated": False,
                "disabled": False,
                "tags": [],
                "siblings": [f.sibling(blobs) for f in repo.files.values()],
            }
            self._json(info, head, commit=repo.sha)
        elif rest[0] == "tree" and len(rest) >= 2:
            revision = unquote(rest[1])
            if not self._revision(repo, revision, head):
                return
            path = unquote("/".join(rest[2:]))
            entries = repo.tree(path, recursive=params.get("recursive", "").lower() in ("1", "true"))
            if entries is None:
                self._error(404, "EntryNotFound", f"{path} does not exist on {revision}", head, commit=repo.sha)
            else:
                self._json(entries, head, commit=repo.sha)
        else:
            self._error(404, None, f"no route for /api/models/{'/'.join(rest)}", head)

    def _resolve(self, segments: list[str], head: bool) -> None:
        repo = self._repo(segments[0], segments[1], head)
        if repo is None:
            return
        revision = unquote(segments[3])
        if not self._revision(repo, revision, head):
            return
        filename = unquote("/".join(segments[4:]))
        f = repo.files.get(filename)
        if f is None:
            self._error(404, "EntryNotFound", f"{filename} does not exist on {revision}", head, commit=repo.sha)
            return
        headers = {"X-Repo-Commit": repo.sha, "Accept-Ranges": "bytes"}
        if f.lfs:
            # the Hub redirects LFS files to its CDN; "localhost" is another origin than the 127.0.0.1 endpoint
            cdn = self.server.hub.cdn_endpoint
            location = f"{cdn}/cdn-lfs/{quote(repo.repo_id)}/{f.sha256}/{quote(filename)}"
            headers.update(
                {
                    "ETag": f'"{f.blob_id}"',
                    "X-Linked-Etag": f'"{f.sha256}"',
                    "X-Linked-Size": str(f.size),
                    "Location": location,
                }
            )
            self._send(302, b"", head, headers, content_type="text/plain; charset=utf-8")
        else:
            headers["ETag"] = f'"{f.blob_id}"'
            self._file(repo.folder / filename, head, headers)

    def _cdn(self, rest: list[str], head: bool) -> None:
        """The stand-in for the Hub's CDN: ``/cdn-lfs/<owner>/<name>/<sha256>/<filename>``."""
        repo = self.server.hub.repo(f"{unquote(rest[0])}/{unquote(rest[1])}")
        filename = unquote("/".join(rest[3:]))
        f = repo.files.get(filename) if repo is not None else None
        if f is None or f.sha256 != rest[2]:
            self._send(403, b"AccessDenied", head, {}, content_type="application/xml")  # as S3 says
            return
        self._file(repo.folder / filename, head, {"ETag": f'"{f.sha256}"', "Accept-Ranges": "bytes"})

    # ------------------------------------------------------------------ responses
    def _file(self, path: Path, head: bool, headers: dict[str, str]) -> None:
        data = path.read_bytes()
        status, size = 200, len(data)
        spec = self.headers.get("Range", "")
        if spec.startswith("bytes=") and "," not in spec and not head:
            first, _, last = spec[len("bytes=") :].partition("-")
            start = int(first) if first else max(size - int(last), 0)
            end = int(last) if first and last else size - 1
            if start >= size:
                self._send(416, b"", head, {"Content-Range": f"bytes */{size}"})
                return
            data = data[start : min(end, size - 1) + 1]
            status = 206
            headers = {**headers, "Content-Range": f"bytes {start}-{start + len(data) - 1}/{size}"}
        self._send(status, data, head, headers, content_type="application/octet-stream")

    def _json(self, payload: object, head: bool, commit: str | None) -> None:
        headers = {"X-Repo-Commit": commit} if commit else {}
        self._send(200, json.dumps(payload).encode(), head, headers, content_type="application/json; charset=utf-8")

    def _error(self, status: int, code: str | None, message: str, head: bool, commit: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        if commit:
            headers["X-Repo-Commit"] = commit
        body = json.dumps({"error": message}).encode()
        self._send(status, body, head, headers, content_type="application/json; charset=utf-8")

    def _send(self, status: int, body: bytes, head: bool, headers: dict[str, str], content_type: str = "") -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Date", formatdate(usegmt=True))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    hub: HubServer


class HubServer:
    """A running test double of the Hub serving the model repos under ``root`` (``root/<owner>/<name>/...``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for assertions
        self.last_modified: dict[str, str] = {}
        self.commits: dict[str, list[str]] = {}  # repo id -> commit summaries, oldest first
        self.visibility: dict[str, str] = {}
        self.write_token: str | None = None  # when set, writes need it as a Bearer token
        self.lfs_store = self.root.parent / f"{self.root.name}-lfs"  # uploaded LFS objects by sha256
        self._httpd = _Server(("127.0.0.1", 0), HubRequestHandler)
        self._httpd.hub = self
        port = self._httpd.server_address[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        self.cdn_endpoint = f"http://localhost:{port}"  # same server, another origin: the client's "CDN"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-double", daemon=True)
        self._thread.start()
        self.running = True

    def repo(self, repo_id: str) -> Repo | None:
        parts = repo_id.split("/")
        if len(parts) != 2 or any(p in ("", ".", "..") for p in parts):
            return None
        folder = self.root / parts[0] / parts[1]
        return Repo(repo_id, folder, len(self.commits.get(repo_id, ()))) if folder.is_dir() else None

    def record_commit(self, repo_id: str, summary: str) -> str:
        """Count a new commit of ``repo_id`` (its contents are in place); return the new commit id."""
        self.commits.setdefault(repo_id, []).append(summary)
        now = datetime.now(UTC)
        self.last_modified[repo_id] = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        repo = self.repo(repo_id)
        assert repo is not None
        return repo.sha

    def publish(self, repo_id: str, folder: str | Path) -> str:
        """Copy ``folder`` in as the new contents of ``repo_id`` (replacing any); return the new commit id."""
        owner, name = repo_id.split("/")
        dest = self.root / owner / name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(folder, dest)
        return self.record_commit(repo_id, "publish")

    def as_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make this server the in-process default endpoint, as ``HF_ENDPOINT`` would at import time."""
        from huggingface_hub import constants

        monkeypatch.setenv("HF_ENDPOINT", self.endpoint)
        monkeypatch.setattr(constants, "ENDPOINT", self.endpoint)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", self.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        )

    def stop(self) -> None:
        if self.running:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self.running = False

    def __enter__(self) -> HubServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory: pytest.TempPathFactory):
    """A local test double of the Hugging Face Hub: ``.endpoint`` (URL), ``.publish(repo_id, folder)``."""
    with HubServer(tmp_path_factory.mktemp("hub")) as server:
        yield server


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty, private ``HF_HOME`` for the client: its own cache, no token of the user's, online mode."""
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    (home / "hub").mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return home
