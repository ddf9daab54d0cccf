"""The write side of the test hub (``tests/hub_server.py``): the requests ``HfApi.create_repo`` and
``HfApi.upload_folder`` make, as listed in that module's docstring. A mixin of
:class:`tests.hub_server.HubRequestHandler`, whose ``_json``, ``_error``, ``_send``, ``_repo`` and ``_revision``
answer for it."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.hub_repo import LFS_MIN_SIZE, LFS_SUFFIXES, Repo, model_card_errors


class UploadHandlers:
    """``POST``/``PUT`` handling: repo creation, preupload, LFS batch and upload, YAML validation, commits."""

    server: Any
    headers: Any
    rfile: Any
    path: str
    command: str

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _write_dispatch(self) -> None:
        hub = self.server.hub
        url = urlsplit(self.path)
        hub.requests.append((self.command, url.path))
        body = self._body()
        segments = [unquote(s) for s in url.path.lstrip("/").split("/")]
        try:
            if self.command == "PUT" and segments[0] == "lfs-upload" and len(segments) == 2:
                self._lfs_put(segments[1], body)  # like a pre-signed storage URL: no Hub token sent or needed
            elif hub.write_token and self.headers.get("Authorization") != f"Bearer {hub.write_token}":
                self._error(401, None, "Invalid credentials in Authorization header", False)
            elif segments[:2] == ["api", "validate-yaml"]:
                errors = model_card_errors(json.loads(body).get("content", ""))
                self._send(400 if errors else 200, json.dumps({"errors": [{"message": e} for e in errors],
                                                               "warnings": []}).encode(), False, {})
            elif segments[:3] == ["api", "repos", "create"]:
                self._create(json.loads(body))
            elif len(segments) == 6 and segments[:2] == ["api", "models"] and segments[4] in ("preupload", "commit"):
                repo = self._repo(segments[2], segments[3], False)
                if repo is not None and self._revision(repo, segments[5], False):
                    (self._preupload if segments[4] == "preupload" else self._commit)(repo, body)
            elif segments[-4:] == ["info", "lfs", "objects", "batch"] and segments[1].endswith(".git"):
                self._lfs_batch(json.loads(body))
            else:
                self._error(404, None, f"no route for {self.command} {url.path}", False)
        except BrokenPipeError:
            pass

    def _create(self, payload: dict) -> None:
        hub = self.server.hub
        repo_id = f"{payload.get('organization')}/{payload['name']}"
        folder = hub.root / repo_id
        if folder.is_dir():
            self._send(409, json.dumps({"error": "You already created this model repo", "url":
                                        f"{hub.endpoint}/{repo_id}"}).encode(), False, {})
            return
        folder.mkdir(parents=True)
        hub.visibility[repo_id] = payload.get("visibility", "public")
        self._json({"url": f"{hub.endpoint}/{repo_id}", "name": repo_id}, False, commit=None)

    def _preupload(self, repo: Repo, body: bytes) -> None:
        files = []
        for item in json.loads(body)["files"]:
            lfs = item["path"].endswith(LFS_SUFFIXES) or item["size"] >= LFS_MIN_SIZE
            old = repo.files.get(item["path"])
            files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": old.blob_id if old else None})
        self._json({"files": files, "commitOid": repo.sha}, False, commit=repo.sha)

    def _lfs_batch(self, payload: dict) -> None:
        hub = self.server.hub
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if not (hub.lfs_store / obj["oid"]).is_file():
                entry["actions"] = {"upload": {"href": f"{hub.endpoint}/lfs-upload/{obj['oid']}"}}
            objects.append(entry)
        self._json({"transfer": "basic", "objects": objects}, False, commit=None)

    def _lfs_put(self, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            self._error(400, None, "sha256 mismatch", False)
            return
        self.server.hub.lfs_store.mkdir(parents=True, exist_ok=True)
        (self.server.hub.lfs_store / oid).write_bytes(body)
        self._send(200, b"", False, {})

    def _commit(self, repo: Repo, body: bytes) -> None:
        hub = self.server.hub
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        for line in lines:
            key, value = line["key"], line["value"]
            target = repo.folder / value.get("path", "")
            if key == "file":
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(value["content"]))
            elif key == "lfsFile":
                stored = hub.lfs_store / value["oid"]
                if not stored.is_file():
                    self._error(422, None, f"LFS object {value['oid']} of {value['path']} was never uploaded", False)
                    return
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(stored, target)
            elif key == "deletedFile":
                target.unlink(missing_ok=True)
            elif key == "deletedFolder":
                shutil.rmtree(target, ignore_errors=True)
        sha = hub.record_commit(repo.repo_id, lines[0]["value"].get("summary", "") if lines else "")
        self._json({"commitOid": sha, "commitUrl": f"{hub.endpoint}/{repo.repo_id}/commit/{sha}",
                    "pullRequestUrl": None}, False, commit=sha)
