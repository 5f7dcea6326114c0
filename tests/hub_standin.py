"""A local HTTP stand-in for the Hub's write API, recording every call huggingface_hub makes.

No push-capable Hub server exists offline (olah and friends are read-only mirrors), so the write path is
tested against this: an in-memory server that speaks the part of the Hub API that ``create_repo``,
``create_branch``, ``repo_info``, ``list_repo_tree``, ``upload_folder`` (validate-yaml, preupload, the LFS
batch API with basic PUT transfers, the ndjson commit) use, and answers like the Hub does, including
the remote file hashes in the preupload answer that let huggingface_hub skip unchanged files. It speaks
LFS, not Xet: tests run it with ``HF_HUB_DISABLE_XET`` set.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".parquet", ".safetensors", ".bin", ".arrow")
PREFIX = {"dataset": "datasets/", "model": "", "space": "spaces/"}
API = re.compile(r"^/api/(?P<type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)/(?P<op>[a-z-]+)/(?P<rest>.+)$")


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, repo_id: str, repo_type: str, private: bool):
        self.repo_id, self.repo_type, self.private = repo_id, repo_type, private
        self.commits: dict[str, dict] = {}  # sha -> {"message", "parent", "files": {path: bytes}}
        self.branches: dict[str, str] = {}
        self.commit("main", "initial commit", {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"})

    def commit(self, branch: str, message: str, files: dict, parent: str | None = None) -> str:
        sha = hashlib.sha1(json.dumps([branch, message, parent, sorted(files), len(self.commits)]).encode()).hexdigest()
        self.commits[sha] = {"message": message, "parent": parent, "files": files}
        self.branches[branch] = sha
        return sha

    def files(self, rev: str) -> dict:
        return self.commits[self.branches.get(rev, rev)]["files"]


class HubStandIn(ThreadingHTTPServer):
    """``HubStandIn().start()``; ``.url``; ``.calls`` (method, path, query, headers, body); ``.repos``."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.calls: list[dict] = []
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.lock = threading.Lock()

    def start(self) -> "HubStandIn":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def commits_posted(self) -> list[dict]:
        return [c for c in self.calls if c["method"] == "POST" and "/commit/" in c["path"]]


class _Handler(BaseHTTPRequestHandler):
    server: HubStandIn

    def log_message(self, *args):  # quiet
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            out = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, payload=None) -> None:
        data = json.dumps(payload if payload is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 404 and (payload or {}).get("error") == "Repository not found":
            self.send_header("X-Error-Code", "RepoNotFound")  # what the Hub sends; huggingface_hub maps it
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        split = urlsplit(self.path)
        path, query = unquote(split.path), parse_qs(split.query)
        body = self._body()
        self.server.calls.append({"method": self.command, "path": path, "query": query,
                                  "headers": dict(self.headers.items()), "body": body})
        with self.server.lock:
            status, payload = self._route(path, query, body)
        self._reply(status, payload)

    do_GET = do_POST = do_PUT = do_HEAD = _handle

    def _route(self, path: str, query: dict, body: bytes):
        srv = self.server
        if path == "/api/repos/create":
            req = json.loads(body)
            repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
            key = (req.get("type") or "model", repo_id)
            url = f"{srv.url}/{PREFIX[key[0]]}{repo_id}"
            if key in srv.repos:  # the Hub's answer: a conflict that still names the repo
                return 409, {"error": "You already created this repo", "url": url}
            srv.repos[key] = Repo(repo_id, key[0], req.get("visibility") == "private")
            return 200, {"url": url}
        if path == "/api/validate-yaml":
            return 200, {"errors": [], "warnings": []}
        if path.startswith("/lfs-upload/"):
            oid = path.rsplit("/", 1)[1]
            if hashlib.sha256(body).hexdigest() != oid:
                return 400, {"error": "sha256 mismatch"}
            srv.lfs[oid] = body
            return 200, {}
        m = re.match(r"^/(datasets/|spaces/)?(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$", path)
        if m:
            objects = []
            for obj in json.loads(body)["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in srv.lfs:
                    entry["actions"] = {"upload": {"href": f"{srv.url}/lfs-upload/{obj['oid']}"}}
                objects.append(entry)
            return 200, {"transfer": "basic", "objects": objects}
        m = API.match(path) or API.match(path + "/revision/main")  # repo_info without a revision
        if not m:
            return 404, {"error": f"stand-in has no route for {self.command} {path}"}
        repo = srv.repos.get((m["type"][:-1], m["repo"]))
        if repo is None:
            return 404, {"error": "Repository not found"}
        op, rest = m["op"], m["rest"]
        if op == "revision":
            sha = repo.branches.get(rest, rest)
            files = repo.files(rest)
            return 200, {"id": repo.repo_id, "sha": sha, "private": repo.private,
                         "siblings": [{"rfilename": p} for p in files]}
        if op == "branch":
            if rest in repo.branches:
                return 409, {"error": "Reference already exists"}
            repo.branches[rest] = repo.branches["main"]
            return 200, {}
        if op == "tree":
            rev, _, sub = rest.partition("/")
            return 200, [self._tree_entry(p, c) for p, c in sorted(repo.files(rev).items()) if p.startswith(sub)]
        if op == "preupload":
            current = repo.files(rest) if rest in repo.branches else {}
            answer = []
            for f in json.loads(body)["files"]:
                lfs = f["path"].endswith(LFS_SUFFIXES) or f["size"] > 10_000_000
                old = current.get(f["path"])
                oid = None if old is None else (hashlib.sha256(old).hexdigest() if lfs else git_blob_sha(old))
                answer.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                               "oid": oid})
            return 200, {"files": answer}
        if op == "commit":
            lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
            files = dict(repo.files(rest))
            for line in lines[1:]:
                v = line["value"]
                if line["key"] == "file":
                    files[v["path"]] = base64.b64decode(v["content"])
                elif line["key"] == "lfsFile":
                    if v["oid"] not in srv.lfs:
                        return 422, {"error": f"LFS object {v['oid']} was never uploaded"}
                    files[v["path"]] = srv.lfs[v["oid"]]
                elif line["key"] == "deletedFile":
                    files.pop(v["path"], None)
            sha = repo.commit(rest, lines[0]["value"]["summary"], files, parent=repo.branches.get(rest))
            return 200, {"commitUrl": f"{srv.url}/{PREFIX[repo.repo_type]}{repo.repo_id}/commit/{sha}",
                         "commitOid": sha, "pullRequestUrl": None}
        return 404, {"error": f"stand-in has no route for {self.command} {path}"}

    @staticmethod
    def _tree_entry(path: str, content: bytes) -> dict:
        entry = {"type": "file", "path": path, "size": len(content), "oid": git_blob_sha(content)}
        if path.endswith(LFS_SUFFIXES):
            entry["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": 134}
        return entry
