"""The object store behind the storage keys (docs/architecture.md, "Object storage").

With TL_STORAGE_URL unset (the default, bin/run) the local root is the store: `publish` does nothing,
`fetch` returns the local path, and everything behaves as it always did. With `s3://bucket/prefix`
the hosts share nothing but the bucket; TL_STORAGE_ROOT is each host's working copy, and the code
meets the store at the boundaries of its work:

    publish(key)            after a local object (a folder under the root) is complete: upload it
    fetch(key) -> Path      before reading one: the local copy, downloaded and verified if missing or stale
    using(key)              fetch, and keep that copy from eviction while the block runs
    remove(key)             the local copy and the remote object (storage.remove calls it for every delete)
    exists, file_names, open_file (a streaming read), sweep, evict, status

S3 has no rename. So that a crash never leaves a half object under a final name, an object's files
go under a fresh generation, `<key>/.g-<id>/<path>`, that no reader looks at, and its manifest,
`<key>/.manifest.json` (the generation and each file's path, size and sha256), is written last in one
PUT: an object without a manifest does not exist. Publishing a key again writes a new generation,
then the manifest, then deletes the old generation: readers see the old files or the new, never a mix.
What a killed writer uploaded has no manifest pointing at it; `sweep` removes it once it is old.

The local copies a host fetched or published are listed in `<root>/.objects/` (the manifest's
generation and size; the file's mtime is the last use) and evicted least recently used first past
TL_STORAGE_CACHE_BYTES. A copy in use (`using`, a shared flock) or being fetched is never evicted,
and an object that was never published is not listed, so it is never evicted either.
"""

import fcntl
import functools
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from . import storage

log = logging.getLogger(__name__)

MANIFEST = ".manifest.json"
GENERATION = ".g-"
INDEX = ".objects"
FETCH_ATTEMPTS = 3


class StoreError(OSError):
    """The object store could not be reached or answered an error; the message says which store."""


class ObjectMissing(FileNotFoundError):
    """No object under this key: never published, removed, or its writer died before the manifest."""


class ObjectCorrupt(StoreError):
    """A downloaded file does not match its manifest (size or sha256)."""


def enabled() -> bool:
    return bool(settings.TL_STORAGE_URL)


def describe() -> str:
    if not enabled():
        return f"local filesystem ({storage.storage_root()})"
    endpoint = settings.AWS_S3_ENDPOINT_URL or "AWS S3"
    return f"{settings.TL_STORAGE_URL} at {endpoint}"


# --- the S3 side -------------------------------------------------------------------------------


def _location() -> tuple[str, str]:
    bucket, _, prefix = settings.TL_STORAGE_URL.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


@functools.lru_cache(maxsize=4)
def _client_for(endpoint: str | None, key_id: str | None, secret: str | None, region: str):
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 4, "mode": "standard"},
        # Path-style URLs (http://host:port/bucket/key) work with every S3-compatible server.
        s3={"addressing_style": "path"},
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name=region,
        config=config,
    )


def _client():
    return _client_for(
        settings.AWS_S3_ENDPOINT_URL,
        settings.AWS_ACCESS_KEY_ID,
        settings.AWS_SECRET_ACCESS_KEY,
        settings.AWS_DEFAULT_REGION,
    )


def _remote(key: str, *parts: str) -> str:
    return "/".join(part for part in (_location()[1], key, *parts) if part)


@contextmanager
def _talking(what: str) -> Iterator[None]:
    """Turn boto's many exception types into one StoreError that names the store and the operation."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise StoreError(f"the object store {describe()} failed to {what}: {exc}") from exc


def _is_missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    missing = {"NoSuchKey", "NoSuchBucket", "404"}
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in missing


def read_manifest(key: str) -> dict | None:
    """The remote manifest of `key`, or None when the object does not exist."""
    try:
        body = _client().get_object(Bucket=_location()[0], Key=_remote(key, MANIFEST))["Body"].read()
    except Exception as exc:
        if _is_missing(exc):
            return None
        with _talking(f"read the manifest of {key}"):
            raise
    return json.loads(body)


def _list(prefix: str) -> Iterator[dict]:
    """Every remote object under `prefix` (a full remote name), with Key, Size and LastModified."""
    paginator = _client().get_paginator("list_objects_v2")
    with _talking(f"list {prefix}"):
        for page in paginator.paginate(Bucket=_location()[0], Prefix=prefix):
            yield from page.get("Contents", [])


def _delete(names: list[str]) -> None:
    bucket = _location()[0]
    with _talking("delete objects"):
        for start in range(0, len(names), 1000):  # S3's most per request
            batch = [{"Key": name} for name in names[start : start + 1000]]
            _client().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def _delete_prefix(prefix: str) -> None:
    names = [item["Key"] for item in _list(prefix)]
    # Manifests first: from then on readers see no object, whatever of its files is still there.
    _delete(sorted(names, key=lambda name: not name.endswith("/" + MANIFEST)))


# --- the local index of copies, and their locks ---------------------------------------------------


def _index_dir() -> Path:
    return storage.storage_root() / INDEX


def _index_name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def _index_path(key: str) -> Path:
    return _index_dir() / f"{_index_name(key)}.json"


def _index_read(key: str) -> dict | None:
    try:
        return json.loads(_index_path(key).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _index_write(key: str, manifest: dict) -> None:
    entry = {"key": key, "generation": manifest["generation"], "bytes": sum(f["size"] for f in manifest["files"])}
    storage.atomic_write_bytes(_index_path(key), json.dumps(entry).encode())


@contextmanager
def _lock(key: str, kind: str, mode: int) -> Iterator[bool]:
    """An flock on `<index>/<key hash>.<kind>`; yields False when LOCK_NB was asked and someone holds it.

    "fetch" (exclusive) makes one process per host download a key while the others wait; "use"
    (shared) is held by readers of a copy, and eviction needs it exclusively.
    """
    _index_dir().mkdir(parents=True, exist_ok=True)
    fd = os.open(_index_dir() / f"{_index_name(key)}.{kind}", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing drops the lock


# --- the verbs ----------------------------------------------------------------------------------


def _local_files(folder: Path) -> list[dict]:
    from workers.ml.hashing import file_sha256

    files = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            rel = path.relative_to(folder).as_posix()
            files.append({"path": rel, "size": path.stat().st_size, "sha256": file_sha256(path)})
    return files


def publish(key: str, *, keep_copy: bool = True) -> None:
    """Upload the finished local object `key` (a folder under the root); a no-op without TL_STORAGE_URL.

    Files first under a new generation, the manifest last: until it lands nobody sees the object,
    and if this process dies first, what it uploaded is an orphan for `sweep`. Publishing the same
    files again uploads nothing. Without `keep_copy` this host's copy goes once the store has it
    (an upload, which only the ingest worker reads).
    """
    if not enabled():
        return
    local = storage.path_of(key)
    if not local.is_dir():
        raise FileNotFoundError(f"{key}: no local folder to publish at {local}")
    files = _local_files(local)
    with _lock(key, "fetch", fcntl.LOCK_EX):
        current = read_manifest(key)
        if current is not None and current["files"] == files:
            manifest = current
        else:
            manifest = {"key": key, "generation": uuid.uuid4().hex, "files": files, "published_at": time.time()}
            bucket, generation = _location()[0], GENERATION + manifest["generation"]
            with _talking(f"upload {key}"):
                for entry in files:
                    _client().upload_file(str(local / entry["path"]), bucket, _remote(key, generation, entry["path"]))
                _client().put_object(
                    Bucket=bucket,
                    Key=_remote(key, MANIFEST),
                    Body=json.dumps(manifest).encode(),
                    ContentType="application/json",
                )
            if current is not None:
                _delete_prefix(_remote(key, GENERATION + current["generation"]) + "/")
        if keep_copy:
            _index_write(key, manifest)
        else:
            storage.remove_local(local)
    log.info("published %s (%d files)", key, len(files))
    evict()


def _download(key: str, manifest: dict, local: Path) -> None:
    """Download the manifest's files into staging, verify each, and rename the folder into place."""
    from workers.ml.hashing import file_sha256

    bucket, generation = _location()[0], GENERATION + manifest["generation"]
    with storage.staging("fetch") as staging:
        target = staging / "object"
        target.mkdir()
        for entry in manifest["files"]:
            path = target.joinpath(*entry["path"].split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            with _talking(f"download {key}/{entry['path']}"):
                _client().download_file(bucket, _remote(key, generation, entry["path"]), str(path))
            if path.stat().st_size != entry["size"] or file_sha256(path) != entry["sha256"]:
                raise ObjectCorrupt(f"{key}/{entry['path']} from {describe()} does not match its manifest")
        storage.remove_local(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        os.replace(target, local)


def fetch(key: str) -> Path:
    """The local path of object `key`, downloaded (and verified) first when this host has no copy of
    its current version. ObjectMissing when the store has no such object. Without TL_STORAGE_URL,
    just the path under the root."""
    local = storage.path_of(key)
    if not enabled():
        return local
    for attempt in range(FETCH_ATTEMPTS):
        with _lock(key, "fetch", fcntl.LOCK_EX):
            manifest = read_manifest(key)
            if manifest is None:
                raise ObjectMissing(f"{key} is not in the object store {describe()}")
            held = _index_read(key)
            if held and held["generation"] == manifest["generation"] and local.is_dir():
                os.utime(_index_path(key))  # its last use, for eviction
                return local
            try:
                _download(key, manifest, local)
            except StoreError:
                # Republished meanwhile (its old generation deleted under us): read the manifest again.
                if attempt + 1 < FETCH_ATTEMPTS and read_manifest(key) != manifest:
                    continue
                raise
            _index_write(key, manifest)
        evict()
        return local
    raise AssertionError("unreachable")


@contextmanager
def using(key: str) -> Iterator[Path]:
    """`fetch(key)`, with the copy kept from eviction until the block ends."""
    if not enabled():
        yield storage.path_of(key)
        return
    with _lock(key, "use", fcntl.LOCK_SH):
        yield fetch(key)


def exists(key: str) -> bool:
    if not enabled():
        return storage.path_of(key).exists()
    return read_manifest(key) is not None


def file_names(key: str) -> list[str]:
    """The relative paths of an object's files (from its manifest: nothing is downloaded)."""
    if not enabled():
        folder = storage.path_of(key)
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    manifest = read_manifest(key)
    if manifest is None:
        raise ObjectMissing(f"{key} is not in the object store {describe()}")
    return [entry["path"] for entry in manifest["files"]]


def children(key: str) -> list[str]:
    """The names of the objects directly under `key` (a folder of objects: feature entries, checkpoints)."""
    if not enabled():
        folder = storage.path_of(key)
        return (
            sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            if folder.is_dir()
            else []
        )
    base = _remote(key) + "/"
    names = set()
    for item in _list(base):
        parts = item["Key"][len(base) :].split("/")
        if len(parts) == 2 and parts[1] == MANIFEST:
            names.add(parts[0])
    return sorted(names)


def fetch_children(key: str) -> list[str]:
    """Fetch every object directly under `key` that the store holds; returns their names."""
    if not enabled():
        return children(key)
    names = children(key)
    for name in names:
        try:
            fetch(f"{key}/{name}")
        except ObjectMissing:
            continue  # removed meanwhile
    return names


def publish_children(key: str, *, prune: bool = False) -> list[str]:
    """Publish each finished folder directly under local `key` (hidden names are a writer's temporary
    ones) that the store does not hold yet; with `prune`, remove the store's children that are no
    longer here (the writer replaced them). Returns the names published."""
    if not enabled():
        return []
    folder = storage.path_of(key)
    local = (
        sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.is_dir() else []
    )
    remote = set(children(key))
    published = [name for name in local if name not in remote]
    for name in published:
        publish(f"{key}/{name}")
    if prune:
        for name in sorted(remote - set(local)):
            _index_path(f"{key}/{name}").unlink(missing_ok=True)
            _delete_prefix(_remote(key, name) + "/")
    return published


def open_file(key: str, name: str):
    """(a binary stream, its size) of one file of an object, read straight from the store (a download
    need not be copied to this host first). ObjectMissing if the object or the file is not there."""
    if not enabled():
        path = storage.path_of(key).joinpath(*name.split("/"))
        if not path.is_file():
            raise ObjectMissing(f"{key}/{name} is not in storage")
        return open(path, "rb"), path.stat().st_size
    manifest = read_manifest(key)
    entry = next((e for e in (manifest or {}).get("files", []) if e["path"] == name), None)
    if entry is None:
        raise ObjectMissing(f"{key}/{name} is not in the object store {describe()}")
    with _talking(f"read {key}/{name}"):
        body = _client().get_object(Bucket=_location()[0], Key=_remote(key, GENERATION + manifest["generation"], name))[
            "Body"
        ]
    return body, entry["size"]


def remove_remote(path: Path) -> None:
    """Remove the remote object(s) under a local path of the root, and this host's index of them
    (storage.remove calls this after removing the local copy). Hidden names (staging) are local only."""
    if not enabled():
        return
    try:
        key = storage.key_of(path)
    except ValueError:
        return
    if key.startswith("."):
        return
    _index_path(key).unlink(missing_ok=True)
    _delete_prefix(_remote(key) + "/")


def remove(key: str) -> None:
    """Remove object `key`: this host's copy and the store's."""
    storage.remove(storage.path_of(key))


def evict(limit: int | None = None) -> list[str]:
    """Drop this host's least recently used copies until they total at most `limit` bytes
    (TL_STORAGE_CACHE_BYTES), skipping copies in use or being fetched; returns the keys dropped."""
    limit = settings.TL_STORAGE_CACHE_BYTES if limit is None else limit
    entries = []
    for path in _index_dir().glob("*.json") if _index_dir().is_dir() else []:
        try:
            entry = json.loads(path.read_text())
            entries.append((path.stat().st_mtime, entry, path))
        except (FileNotFoundError, ValueError):
            continue
    total = sum(entry["bytes"] for _, entry, _ in entries)
    dropped = []
    for _, entry, path in sorted(entries, key=lambda item: item[0]):
        if total <= limit:
            break
        key = entry["key"]
        with (
            _lock(key, "use", fcntl.LOCK_EX | fcntl.LOCK_NB) as free,
            _lock(key, "fetch", fcntl.LOCK_EX | fcntl.LOCK_NB) as idle,
        ):
            if not (free and idle):
                continue
            storage.remove_local(storage.path_of(key))
            path.unlink(missing_ok=True)
        total -= entry["bytes"]
        dropped.append(key)
    if dropped:
        log.info("evicted %s from the local copy of the object store", dropped)
    return dropped


def sweep(*, cutoff: float, owned: dict[str, Callable[[str], bool]]) -> list[str]:
    """Remove from the store what no manifest points at (a killed writer's files) and objects whose
    owner is gone, when last written before `cutoff` (a Unix time); returns what was removed.

    `owned` maps a top-level folder ("datasets") to a predicate on the next name ("12"), as the
    local sweep uses them (webapp/projects/recovery.py). Feature entries are owned by their hash.
    """
    if not enabled():
        return []
    base = _remote("")
    start = len(base) + 1 if base else 0
    manifests: dict[str, float] = {}
    generations: dict[tuple[str, str], float] = {}
    for item in _list(base + "/" if base else ""):
        parts = item["Key"][start:].split("/")
        written = item["LastModified"].timestamp()
        marked = next((i for i, part in enumerate(parts) if part.startswith(GENERATION)), None)
        if marked is not None:
            group = ("/".join(parts[:marked]), parts[marked].removeprefix(GENERATION))
            generations[group] = max(generations.get(group, 0.0), written)
        elif parts[-1] == MANIFEST:
            manifests["/".join(parts[:-1])] = written
    removed = []
    for key, written in sorted(manifests.items()):
        kind, _, rest = key.partition("/")
        name = rest.split("/")[0]
        if written < cutoff and kind in owned and name and not owned[kind](name):
            _delete_prefix(_remote(key) + "/")
            removed.append(key)
    live = {key: (read_manifest(key) or {}).get("generation") for key in manifests if key not in removed}
    for (key, generation), written in sorted(generations.items()):
        if written < cutoff and key not in removed and live.get(key) != generation:
            _delete_prefix(_remote(key, GENERATION + generation) + "/")
            removed.append(f"{key}/{GENERATION}{generation}")
    if removed:
        log.info("object store sweep removed %s", removed)
    return removed


def ensure_bucket() -> bool:
    """Create the store's bucket unless it exists (the setup step); True when it was created."""
    bucket = _location()[0]
    try:
        _client().head_bucket(Bucket=bucket)
        return False
    except Exception as exc:
        if not _is_missing(exc):
            with _talking(f"open the bucket {bucket}"):
                raise
    with _talking(f"create the bucket {bucket}"):
        _client().create_bucket(Bucket=bucket)
    return True


def status() -> tuple[bool, str]:
    """Whether the store answers (the health endpoint)."""
    if not enabled():
        root = storage.storage_root()
        # Anyone may read the health endpoint: the root's path stays out of the answer.
        return (os.access(root, os.W_OK) if root.exists() else True), "local filesystem"
    try:
        with _talking("answer"):
            _client().head_bucket(Bucket=_location()[0])
    except StoreError as exc:
        return False, str(exc)
    return True, describe()
