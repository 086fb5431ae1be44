"""A small S3-compatible object store on local files, for the broker's durable storage.

Tansu keeps topics, messages and committed offsets in memory unless given an object store
(`--storage-engine s3://BUCKET/`); this build has no PostgreSQL or SQLite engine. This
server speaks the part of the S3 API that Tansu's client uses (path-style GET, HEAD, PUT
with If-Match / If-None-Match, DELETE, ListObjectsV2), keeps each object in a file, and
ignores signatures: it listens on the loopback only, for the chaos stack.

    python -m chaos.objectstore --port 9000 --root var/objects
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import os
import socket
import tempfile
import threading
from datetime import UTC, datetime
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

# One writer at a time: a conditional PUT reads the current ETag and writes in one step;
# listings read the key index under it too.
_lock = threading.Lock()


class Store:
    """Objects as files, one folder per bucket. The sorted key list and the ETags are kept
    in memory (a listing would otherwise read every object), rebuilt from the files at start."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._keys: dict[str, list[str]] = {}
        self._etags: dict[tuple[str, str], str] = {}
        # Each object's <Contents> element: Tansu lists a partition's batches at every fetch
        # that reaches past what it knew, so a listing must not touch the files.
        self._entries: dict[tuple[str, str], str] = {}

    def path(self, bucket: str, key: str) -> Path:
        return self.root / quote(bucket, safe="") / quote(key, safe="")

    @staticmethod
    def digest(data: bytes) -> str:
        return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'

    def etag(self, bucket: str, key: str, data: bytes | None = None) -> str:
        known = self._etags.get((bucket, key))
        if known is None:
            known = self.digest(self.path(bucket, key).read_bytes() if data is None else data)
            self._etags[(bucket, key)] = known
        return known

    def read(self, bucket: str, key: str) -> bytes | None:
        try:
            return self.path(bucket, key).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, bucket: str, key: str) -> bool:
        keys = self.keys(bucket)
        i = bisect.bisect_left(keys, key)
        return i < len(keys) and keys[i] == key

    def write(self, bucket: str, key: str, data: bytes) -> str:
        target = self.path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".put-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
        self._etags[(bucket, key)] = etag = self.digest(data)
        self._entries.pop((bucket, key), None)
        if not self.exists(bucket, key):
            bisect.insort(self.keys(bucket), key)
        return etag

    def delete(self, bucket: str, key: str) -> None:
        self.path(bucket, key).unlink(missing_ok=True)
        self._etags.pop((bucket, key), None)
        self._entries.pop((bucket, key), None)
        if self.exists(bucket, key):
            self.keys(bucket).remove(key)

    def entry(self, bucket: str, key: str) -> str:
        """The object's <Contents> element of a listing (FileNotFoundError if it is gone)."""
        known = self._entries.get((bucket, key))
        if known is None:
            stat = self.path(bucket, key).stat()
            stamp = datetime.fromtimestamp(stat.st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            known = (f"<Contents><Key>{escape(key)}</Key><LastModified>{stamp}</LastModified>"
                     f"<ETag>{escape(self.etag(bucket, key))}</ETag><Size>{stat.st_size}</Size>"
                     "<StorageClass>STANDARD</StorageClass></Contents>")
            self._entries[(bucket, key)] = known
        return known

    def keys(self, bucket: str) -> list[str]:
        if bucket not in self._keys:
            folder = self.root / quote(bucket, safe="")
            found = [unquote(p.name) for p in folder.iterdir() if not p.name.startswith(".put-")] if folder.is_dir() else []
            self._keys[bucket] = sorted(found)
        return self._keys[bucket]


class Handler(BaseHTTPRequestHandler):
    store: Store
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: with Nagle's algorithm the second waits for
        # the client's delayed ACK, 40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        if os.environ.get("OBJECTSTORE_TRACE"):
            print(f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}", flush=True)

    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        url = urlsplit(self.path)
        bucket, _, key = unquote(url.path).lstrip("/").partition("/")
        return bucket, key, parse_qs(url.query, keep_blank_values=True)

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{code}</Message></Error>'
        self._send(status, body.encode(), {"Content-Type": "application/xml"})

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or ""):
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_PUT(self) -> None:
        bucket, key, _ = self._target()
        data = self._body()
        if not key:  # create bucket
            (self.store.root / quote(bucket, safe="")).mkdir(parents=True, exist_ok=True)
            return self._send(200)
        with _lock:
            exists = self.store.exists(bucket, key)
            if self.headers.get("If-None-Match") == "*" and exists:
                return self._error(412, "PreconditionFailed")
            wanted = self.headers.get("If-Match")
            if wanted is not None:
                if not exists:
                    return self._error(404, "NoSuchKey")
                if wanted != self.store.etag(bucket, key):
                    return self._error(412, "PreconditionFailed")
            etag = self.store.write(bucket, key, data)
        self._send(200, headers={"ETag": etag})

    def do_GET(self) -> None:
        bucket, key, query = self._target()
        if not key:
            return self._list(bucket, query)
        data = self.store.read(bucket, key)
        if data is None:
            return self._error(404, "NoSuchKey")
        with _lock:
            etag = self.store.etag(bucket, key, data)
        if self.headers.get("If-Match") not in (None, etag):
            return self._error(412, "PreconditionFailed")
        if self.headers.get("If-None-Match") == etag:
            return self._send(304, headers={"ETag": etag})
        headers = {"ETag": etag, "Last-Modified": self._modified(bucket, key), "Content-Type": "application/octet-stream"}
        status = 200
        wanted = self.headers.get("Range", "")
        if wanted.startswith("bytes="):
            start_text, _, end_text = wanted[6:].partition("-")
            if start_text:
                start, end = int(start_text), int(end_text) if end_text else len(data) - 1
            else:
                start, end = max(0, len(data) - int(end_text)), len(data) - 1
            end = min(end, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start:end + 1], 206
        self._send(status, data, headers)

    def do_HEAD(self) -> None:
        bucket, key, _ = self._target()
        data = self.store.read(bucket, key) if key else b""
        if data is None:
            return self._send(404)
        self.send_response(200)
        if key:
            with _lock:
                self.send_header("ETag", self.store.etag(bucket, key, data))
        self.send_header("Last-Modified", self._modified(bucket, key) if key else formatdate(usegmt=True))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()

    def do_DELETE(self) -> None:
        bucket, key, _ = self._target()
        with _lock:
            self.store.delete(bucket, key)
        self._send(204)

    def do_POST(self) -> None:
        self._body()
        self._error(501, "NotImplemented")

    def _modified(self, bucket: str, key: str) -> str:
        return formatdate(self.store.path(bucket, key).stat().st_mtime, usegmt=True)

    def _list(self, bucket: str, query: dict[str, list[str]]) -> None:
        """ListObjectsV2, with prefix, delimiter, start-after and continuation."""
        def one(name: str) -> str:
            return (query.get(name) or [""])[0]

        prefix, delimiter = one("prefix"), one("delimiter")
        after = one("continuation-token") or one("start-after")
        limit = int(one("max-keys") or 1000)
        contents: list[str] = []
        prefixes: list[str] = []
        truncated, last = False, ""
        with _lock:
            index = self.store.keys(bucket)
            start = bisect.bisect_right(index, after) if after and after >= prefix else bisect.bisect_left(index, prefix)
            keys = index[start:start + limit + 1] if not delimiter else index[start:]
        for key in keys:
            if not key.startswith(prefix):
                break
            if after and key <= after:
                continue
            if delimiter and delimiter in key[len(prefix):]:
                common = key[: len(prefix) + key[len(prefix):].index(delimiter) + len(delimiter)]
                if common in prefixes:
                    continue
                if after and common <= after:
                    continue
                entry, last = common, common
                if len(contents) + len(prefixes) >= limit:
                    truncated = True
                    break
                prefixes.append(entry)
                continue
            if len(contents) + len(prefixes) >= limit:
                truncated = True
                break
            try:
                with _lock:
                    contents.append(self.store.entry(bucket, key))
            except FileNotFoundError:  # deleted since the index was read
                continue
            last = key
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(contents) + len(prefixes)}</KeyCount>"
            f"<MaxKeys>{limit}</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
            + (f"<NextContinuationToken>{escape(last)}</NextContinuationToken>" if truncated else "")
            + "".join(contents)
            + "".join(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes)
            + "</ListBucketResult>"
        )
        self._send(HTTPStatus.OK, body.encode(), {"Content-Type": "application/xml"})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chaos.objectstore")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--bucket", default="tansu", help="created at start")
    args = parser.parse_args()
    (args.root / quote(args.bucket, safe="")).mkdir(parents=True, exist_ok=True)
    Handler.store = Store(args.root)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"objectstore: serving {args.root} on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
