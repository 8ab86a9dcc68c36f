"""A stand-in for the Hugging Face hub's HTTP API, run as a real process on 127.0.0.1.

It is not the hub: it implements only what `huggingface_hub`'s upload path calls when Xet is
off (`HF_HUB_DISABLE_XET=1`; the Xet storage protocol needs the hub's CAS servers), so the
real client can be tested against it end to end:

    POST /api/repos/create                                  create (409 when it exists), holding
                                                            a `.gitattributes` as the hub's does
    POST /api/{type}s/{ns}/{name}/branch/{branch}           create a branch (409 when it exists)
    POST /api/validate-yaml                                 the card's YAML must parse
    POST /api/{type}s/{ns}/{name}/preupload/{rev}           lfs or regular, and the committed oid
    POST /{type}s/{ns}/{name}.git/info/lfs/objects/batch    Git LFS batch: actions only for
                                                            objects the server does not hold
    PUT  /_lfs/{oid}  and POST /_lfs/{oid}/verify           the LFS upload (sha256 checked)
    POST /api/{type}s/{ns}/{name}/commit/{rev}              NDJSON header/file/lfsFile/deleted…
    GET  /api/{type}s/{ns}/{name}/revision/{rev}            repo info (the no-op commit path)
    GET  /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]       files and folders (`?recursive=true`
                                                            for all below), 404 for no such
                                                            revision or folder

A commit is applied whole or not at all: deleting a file (or folder) the revision does not hold
fails it with 404, as on the hub.

Every request needs `Authorization: Bearer <token>`. Committed files are written under
STORAGE/<type>s/<ns>/<name>/<path> so a test can load what was uploaded. For the tests:
`GET /_state` reports repos, commits and how many times each LFS object was uploaded;
`POST /_control {"stall_after": N}` makes every LFS upload after the N-th hang (to kill a
client halfway); `{"stall_after": null}` ends that, and the hung uploads fail unstored, as a
transfer cut off halfway would.

    python tests/hub_server.py STORAGE TOKEN      # prints the port, then serves
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import httpx
import yaml

_REPO = r"(?P<type>dataset|model|space)s/(?P<repo>[^/]+/[^/]+)"


class _Hub:
    def __init__(self, storage: Path, token: str):
        self.storage, self.token = storage, token
        self.lock = threading.Lock()
        self.repos: dict[str, dict] = {}  # "datasets/ns/name" -> {"branches": {name: files}}
        self.objects: dict[str, bytes] = {}  # LFS sha256 -> content
        self.uploads: dict[str, int] = {}  # LFS sha256 -> completed uploads
        self.commits = 0
        self.stall_after: int | None = None
        self.admitted = 0  # uploads let through, stored or not yet

    def files(self, key: str, revision: str) -> dict[str, dict]:
        return self.repos[key]["branches"].setdefault(revision, {})


_GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"


def _entry(content: bytes) -> dict:
    return {"sha256": hashlib.sha256(content).hexdigest(), "sha1": _git_blob_sha1(content),
            "size": len(content)}  # fmt: skip


def _tree(files: dict[str, dict], folder: str, recursive: bool) -> list[dict] | None:
    """The hub's tree listing of `folder` ("" for the root), or None when no file is in it."""
    prefix = folder.strip("/") + "/" if folder.strip("/") else ""
    below = sorted(p for p in files if p.startswith(prefix))
    if prefix and not below:
        return None
    entries: dict[str, dict] = {}
    for path in below:
        parts = path[len(prefix) :].split("/")
        for depth in range(1, len(parts)):
            if depth == 1 or recursive:
                name = prefix + "/".join(parts[:depth])
                entries[name] = {"type": "directory", "path": name, "oid": "0" * 40}
        if len(parts) == 1 or recursive:
            f = files[path]
            entries[path] = {"type": "file", "path": path, "size": f["size"], "oid": f["sha1"]}
            if path.endswith(".parquet"):
                entries[path]["lfs"] = {"oid": f["sha256"], "size": f["size"],
                                        "pointerSize": 134}  # fmt: skip
    return list(entries.values())


def _git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _handler(hub: _Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _authorised(self) -> bool:
            if self.path.startswith("/_") and not self.path.startswith("/_lfs"):
                return True
            if self.headers.get("Authorization") == f"Bearer {hub.token}":
                return True
            self._send(401, {"error": "Invalid credentials in Authorization header"})
            return False

        def _repo(self, match: re.Match) -> str | None:
            key = f"{match['type']}s/{match['repo']}"
            if key not in hub.repos:
                self._send(404, {"error": "Repository not found"})
                return None
            return key

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path == "/_state":
                with hub.lock:
                    repos = {
                        key: {branch: {path: {"sha256": f["sha256"], "size": f["size"]}
                                       for path, f in files.items()}
                              for branch, files in repo["branches"].items()}
                        for key, repo in hub.repos.items()
                    }  # fmt: skip
                    return self._send(200, {"repos": repos, "uploads": hub.uploads,
                                            "commits": hub.commits})  # fmt: skip
            if m := re.fullmatch(rf"/api/{_REPO}/revision/(?P<rev>[^/?]+)(\?.*)?", self.path):
                if (key := self._repo(m)) is None:
                    return
                files = hub.files(key, m["rev"])
                return self._send(200, {"id": m["repo"], "sha": hashlib.sha1(
                    json.dumps(sorted(files)).encode()).hexdigest(), "private": False,
                    "siblings": [{"rfilename": p} for p in sorted(files)]})  # fmt: skip
            tree = rf"/api/{_REPO}/tree/(?P<rev>[^/?]+)(?P<folder>/[^?]*)?(\?(?P<query>.*))?"
            if m := re.fullmatch(tree, self.path):
                if (key := self._repo(m)) is None:
                    return
                branches, revision = hub.repos[key]["branches"], unquote(m["rev"])
                if revision not in branches:
                    return self._send(404, {"error": f"Revision Not Found: {revision}"})
                recursive = "recursive=true" in (m["query"] or "").lower()
                with hub.lock:
                    listing = _tree(branches[revision], unquote(m["folder"] or ""), recursive)
                if listing is None:
                    return self._send(404, {"error": f"Entry Not Found: {m['folder']}"})
                return self._send(200, listing)
            self._send(404, {"error": f"no route GET {self.path}"})

        def do_PUT(self) -> None:
            m = re.fullmatch(r"/_lfs/(?P<oid>[0-9a-f]{64})", self.path)
            if m is None:
                return self._send(404, {"error": f"no route PUT {self.path}"})
            content = self._body()
            with hub.lock:  # decide and count in one step: uploads arrive in parallel
                stall = hub.stall_after is not None and hub.admitted >= hub.stall_after
                hub.admitted += not stall
            if stall:  # hang until the stall is lifted, then drop the upload unstored
                while hub.stall_after is not None:
                    time.sleep(0.1)
                return self._send(503, {"error": "upload interrupted"})
            if hashlib.sha256(content).hexdigest() != m["oid"]:
                return self._send(400, {"error": "content does not match its oid"})
            with hub.lock:
                hub.objects[m["oid"]] = content
                hub.uploads[m["oid"]] = hub.uploads.get(m["oid"], 0) + 1
            self._send(200, {})

        def do_POST(self) -> None:
            if not self._authorised():
                return
            raw = self._body()
            path = self.path.split("?")[0]
            if path == "/_control":
                with hub.lock:
                    hub.stall_after = json.loads(raw)["stall_after"]
                return self._send(200, {})
            if path == "/api/repos/create":
                body = json.loads(raw)
                key = f"{body.get('type') or 'model'}s/{body['organization']}/{body['name']}"
                with hub.lock:
                    if key in hub.repos:
                        return self._send(409, {"error": "You already created this repo",
                                                "url": f"{self._base()}/{key}"})  # fmt: skip
                    hub.repos[key] = {"branches": {"main": {}}}
                    self._store(key, "main", {".gitattributes": _GITATTRIBUTES})
                return self._send(200, {"url": f"{self._base()}/{key}"})
            if path == "/api/validate-yaml":
                content = json.loads(raw)["content"]
                front = content.split("---")[1] if content.startswith("---") else ""
                try:
                    yaml.safe_load(front)
                except yaml.YAMLError as error:
                    return self._send(400, {"errors": [{"message": str(error)}]})
                return self._send(200, {"errors": [], "warnings": []})
            if m := re.fullmatch(r"/_lfs/(?P<oid>[0-9a-f]{64})/verify", path):
                return self._send(200 if m["oid"] in hub.objects else 404, {})
            if m := re.fullmatch(rf"/api/{_REPO}/branch/(?P<branch>[^/]+)", path):
                if (key := self._repo(m)) is None:
                    return
                with hub.lock:
                    if m["branch"] in hub.repos[key]["branches"]:
                        return self._send(409, {"error": "Branch already exists"})
                    hub.repos[key]["branches"][m["branch"]] = dict(hub.files(key, "main"))
                return self._send(200, {})
            if m := re.fullmatch(rf"/api/{_REPO}/preupload/(?P<rev>[^/]+)", path):
                if (key := self._repo(m)) is None:
                    return
                files = hub.files(key, m["rev"])
                answer = []
                for f in json.loads(raw)["files"]:
                    lfs = f["path"].endswith(".parquet") or f["size"] >= 10 * 2**20
                    held = files.get(f["path"])
                    oid = held and (held["sha256"] if lfs else held["sha1"])
                    answer.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular",
                                   "shouldIgnore": False, "oid": oid})  # fmt: skip
                return self._send(200, {"files": answer})
            if m := re.fullmatch(rf"/{_REPO}\.git/info/lfs/objects/batch", path):
                if self._repo(m) is None:
                    return
                objects = []
                for o in json.loads(raw)["objects"]:
                    entry = {"oid": o["oid"], "size": o["size"], "authenticated": True}
                    if o["oid"] not in hub.objects:
                        href = f"{self._base()}/_lfs/{o['oid']}"
                        entry["actions"] = {"upload": {"href": href},
                                            "verify": {"href": f"{href}/verify"}}  # fmt: skip
                    objects.append(entry)
                return self._send(200, {"transfer": "basic", "objects": objects})
            if m := re.fullmatch(rf"/api/{_REPO}/commit/(?P<rev>[^/]+)", path):
                if (key := self._repo(m)) is None:
                    return
                return self._commit(key, m["rev"], raw)
            self._send(404, {"error": f"no route POST {self.path}"})

        def _commit(self, key: str, revision: str, raw: bytes) -> None:
            changes: dict[str, bytes | None] = {}
            deleted_folders = []
            for line in raw.decode().splitlines():
                item = json.loads(line)
                value = item["value"]
                if item["key"] == "file":
                    changes[value["path"]] = base64.b64decode(value["content"])
                elif item["key"] == "lfsFile":
                    if value["oid"] not in hub.objects:
                        return self._send(422, {"error": f"LFS object of {value['path']} "
                                                         "was never uploaded"})  # fmt: skip
                    changes[value["path"]] = hub.objects[value["oid"]]
                elif item["key"] == "deletedFile":
                    changes[value["path"]] = None
                elif item["key"] == "deletedFolder":
                    deleted_folders.append(value["path"].strip("/") + "/")
            with hub.lock:
                files = hub.files(key, revision)
                for folder in deleted_folders:
                    inside = [p for p in files if p.startswith(folder)]
                    if not inside:
                        return self._send(404, {"error": f"Entry Not Found: {folder}"})
                    changes |= dict.fromkeys(inside)
                absent = [p for p, c in changes.items() if c is None and p not in files]
                if absent:
                    return self._send(404, {"error": f"Entry Not Found: {absent[0]}"})
                self._store(key, revision, changes)
                hub.commits += 1
                oid = hashlib.sha1(f"{key}{hub.commits}".encode()).hexdigest()
            self._send(200, {"commitUrl": f"{self._base()}/{key}/commit/{oid}",
                             "commitOid": oid, "pullRequestUrl": None})  # fmt: skip

        def _store(self, key: str, revision: str, changes: dict[str, bytes | None]) -> None:
            """Apply added (bytes) and deleted (None) files to a revision and to STORAGE."""
            files = hub.files(key, revision)
            for path, content in changes.items():
                target = hub.storage / key / revision / path
                if content is None:
                    del files[path]
                    target.unlink(missing_ok=True)
                else:
                    files[path] = _entry(content)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(content)

        def _base(self) -> str:
            return f"http://{self.headers.get('Host')}"

    return Handler


class HubServer:
    """The server above in its own process, for a `with` block in a test."""

    def __init__(self, storage: Path, token: str):
        self.storage = storage
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(storage), token], stdout=subprocess.PIPE, text=True
        )
        self.endpoint = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    def state(self) -> dict:
        return httpx.get(f"{self.endpoint}/_state").json()

    def stall_after(self, uploads: int | None) -> None:
        httpx.post(f"{self.endpoint}/_control", json={"stall_after": uploads})

    def __enter__(self) -> HubServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.wait()


def main(storage: str, token: str) -> None:
    hub = _Hub(Path(storage), token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
