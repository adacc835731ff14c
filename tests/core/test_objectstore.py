"""The object store layer against a real S3 server (SeaweedFS): two "hosts" are two local roots."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, subprocess_env, wait_for
from tests.s3 import remote_names, s3_client, store_env
from webapp.core import objectstore, storage


def _write_object(key: str, files: dict[str, bytes]):
    folder = storage.path_of(key)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def _host(settings, tmp_path, name: str):
    root = tmp_path / name
    root.mkdir(exist_ok=True)
    settings.TL_STORAGE_ROOT = root
    return root


def test_it_publishes_the_files_then_the_manifest_and_another_host_fetches_them(object_store, settings, tmp_path):
    _write_object("models/7", {"model.keras": b"weights" * 100, "model.json": b"{}"})
    objectstore.publish("models/7")
    names = remote_names(settings.AWS_S3_ENDPOINT_URL, object_store)
    generation = objectstore.read_manifest("models/7")["generation"]
    assert names == [
        "models/7/.g-" + generation + "/model.json",
        "models/7/.g-" + generation + "/model.keras",
        "models/7/.manifest.json",
    ]

    other = _host(settings, tmp_path, "host-b")
    path = objectstore.fetch("models/7")
    assert path == other / "models" / "7"
    assert (path / "model.keras").read_bytes() == b"weights" * 100
    assert (path / "model.json").read_bytes() == b"{}"
    assert objectstore.exists("models/7") and objectstore.file_names("models/7") == ["model.json", "model.keras"]


def test_a_copy_of_the_current_version_is_not_downloaded_again(object_store):
    _write_object("datasets/3", {"train/cats/a.jpg": b"cat"})
    objectstore.publish("datasets/3")
    path = objectstore.fetch("datasets/3")
    (path / "train" / "cats" / "a.jpg").write_bytes(b"this host's copy")
    assert (objectstore.fetch("datasets/3") / "train" / "cats" / "a.jpg").read_bytes() == b"this host's copy"


def test_fetching_a_key_that_was_never_published_says_it_does_not_exist(object_store):
    _write_object("models/8", {"model.keras": b"only here"})  # written, never published
    with pytest.raises(objectstore.ObjectMissing, match=r"models/9 is not in the object store s3://"):
        objectstore.fetch("models/9")
    assert not objectstore.exists("models/8")


def test_republishing_replaces_the_old_version_whole_and_hosts_fetch_the_new_one(object_store, settings, tmp_path):
    host_a = settings.TL_STORAGE_ROOT
    _write_object("checkpoints/4", {"state.json": b'{"epoch": 1}', "weights.h5": b"one"})
    objectstore.publish("checkpoints/4")
    _host(settings, tmp_path, "host-b")
    assert (objectstore.fetch("checkpoints/4") / "weights.h5").read_bytes() == b"one"

    settings.TL_STORAGE_ROOT = host_a
    _write_object("checkpoints/4", {"state.json": b'{"epoch": 2}', "weights.h5": b"two"})
    objectstore.publish("checkpoints/4")
    generation = objectstore.read_manifest("checkpoints/4")["generation"]
    assert all(
        f"/.g-{generation}/" in name or name.endswith(".manifest.json")
        for name in remote_names(settings.AWS_S3_ENDPOINT_URL, object_store)
    ), "the old generation is deleted once the new manifest is written"

    _host(settings, tmp_path, "host-b")
    path = objectstore.fetch("checkpoints/4")
    assert (path / "weights.h5").read_bytes() == b"two" and (path / "state.json").read_bytes() == b'{"epoch": 2}'


def test_a_file_that_does_not_match_its_manifest_is_refused_and_nothing_is_kept(object_store, settings, tmp_path):
    _write_object("models/5", {"model.keras": b"the real weights"})
    objectstore.publish("models/5")
    generation = objectstore.read_manifest("models/5")["generation"]
    bucket, _, prefix = object_store.removeprefix("s3://").partition("/")
    s3_client(settings.AWS_S3_ENDPOINT_URL).put_object(
        Bucket=bucket, Key=f"{prefix}/models/5/.g-{generation}/model.keras", Body=b"tampered weights"
    )
    other = _host(settings, tmp_path, "host-b")
    with pytest.raises(objectstore.ObjectCorrupt, match="models/5/model.keras .* does not match its manifest"):
        objectstore.fetch("models/5")
    assert not (other / "models" / "5").exists()
    assert not any((other / ".staging").iterdir()), "the half download went with its staging folder"


def test_removing_a_key_removes_the_local_copy_and_every_remote_file(object_store, settings):
    folder = _write_object("exports/2", {"bundle.zip": b"zip", "model_card.json": b"{}"})
    objectstore.publish("exports/2")
    _write_object("exports/21", {"bundle.zip": b"another export"})
    objectstore.publish("exports/21")
    storage.remove(folder)
    assert not folder.exists() and not objectstore.exists("exports/2")
    assert all(name.startswith("exports/21/") for name in remote_names(settings.AWS_S3_ENDPOINT_URL, object_store))


def test_a_download_streams_one_file_from_the_store(object_store, settings, tmp_path):
    _write_object("exports/3", {"bundle.zip": b"z" * 5000})
    objectstore.publish("exports/3")
    other = _host(settings, tmp_path, "host-b")
    stream, size = objectstore.open_file("exports/3", "bundle.zip")
    assert size == 5000 and stream.read() == b"z" * 5000
    assert not (other / "exports").exists(), "nothing is copied to the reading host"
    with pytest.raises(objectstore.ObjectMissing, match="exports/3/predict.py"):
        objectstore.open_file("exports/3", "predict.py")


def test_the_cache_drops_least_recently_used_copies_but_not_one_in_use_or_unpublished(object_store, settings):
    settings.TL_STORAGE_CACHE_BYTES = 2500
    unpublished = _write_object("uploads/dataset-1", {"archive.zip": b"u" * 5000})
    for number in (1, 2):
        _write_object(f"models/{number}", {"model.keras": b"m" * 1000})
        objectstore.publish(f"models/{number}")
        time.sleep(0.01)  # distinct last-use times
    with objectstore.using("models/1"):
        objectstore.fetch("models/1")  # also its most recent use
        _write_object("models/3", {"model.keras": b"m" * 1000})
        objectstore.publish("models/3")  # 3000 bytes held: one must go, and 1 is in use
        assert not storage.path_of("models/2").exists()
        assert storage.path_of("models/1").exists() and storage.path_of("models/3").exists()
    settings.TL_STORAGE_CACHE_BYTES = 1000
    assert objectstore.evict() == ["models/1"]
    assert unpublished.exists(), "a copy the store does not hold is never evicted"
    assert objectstore.exists("models/2") and (objectstore.fetch("models/2") / "model.keras").stat().st_size == 1000


WRITER = "import django; django.setup();from webapp.core import objectstore; objectstore.publish('models/11')"


def test_a_writer_killed_mid_upload_leaves_no_object_and_the_sweep_removes_its_files(object_store, settings, tmp_path):
    files = {f"part-{index:03d}.bin": os.urandom(64 * 1024) for index in range(200)}
    _write_object("models/11", files)
    endpoint = settings.AWS_S3_ENDPOINT_URL
    env = subprocess_env(**store_env(endpoint, object_store, settings.TL_STORAGE_ROOT))
    writer = subprocess.Popen([sys.executable, "-c", WRITER], cwd=ROOT, env=env, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: remote_names(endpoint, object_store), timeout=60, interval=0.01, message="the first upload")
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    uploaded = remote_names(endpoint, object_store)
    assert uploaded and all("/.g-" in name for name in uploaded), "files were uploaded, never the manifest"
    assert len(uploaded) < len(files)

    _host(settings, tmp_path, "reader")
    assert not objectstore.exists("models/11")
    with pytest.raises(objectstore.ObjectMissing, match="models/11 is not in the object store"):
        objectstore.fetch("models/11")

    assert objectstore.sweep(cutoff=time.time() - 3600, owned={}) == [], "too recent: perhaps a live writer"
    removed = objectstore.sweep(cutoff=time.time() + 1, owned={})
    assert removed == [f"models/11/{uploaded[0].split('/')[2]}"]
    assert remote_names(endpoint, object_store) == []


def test_the_sweep_removes_objects_whose_owner_is_gone(object_store, settings):
    for key in ("datasets/1", "datasets/2"):
        _write_object(key, {"train/a/1.jpg": b"x"})
        objectstore.publish(key)
    removed = objectstore.sweep(cutoff=time.time() + 1, owned={"datasets": lambda name: name == "1"})
    assert removed == ["datasets/2"]
    assert objectstore.exists("datasets/1") and not objectstore.exists("datasets/2")


def test_without_a_store_url_every_verb_works_on_the_local_root(settings, tmp_path):
    settings.TL_STORAGE_URL = None
    settings.TL_STORAGE_ROOT = tmp_path
    folder = _write_object("models/1", {"model.keras": b"local"})
    objectstore.publish("models/1")
    assert objectstore.fetch("models/1") == folder and objectstore.exists("models/1")
    stream, size = objectstore.open_file("models/1", "model.keras")
    with stream:
        assert (stream.read(), size) == (b"local", 5)
    assert objectstore.status() == (True, "local filesystem")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"], "no index, no store"


def test_setup_creates_the_bucket_once_and_names_a_store_that_does_not_answer(object_store, settings):
    from io import StringIO

    from django.core.management import CommandError, call_command

    settings.TL_STORAGE_URL = object_store.replace("s3://tl-test-", "s3://tl-new-")
    out = StringIO()
    call_command("ensure_storage", stdout=out)
    assert out.getvalue() == f"Created the object store {objectstore.describe()}.\n"
    call_command("ensure_storage", stdout=out)
    assert out.getvalue().count("Created") == 1
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:1"
    with pytest.raises(CommandError, match=r"object store .* at http://127.0.0.1:1 failed .*; check TL_STORAGE_URL"):
        call_command("ensure_storage")
