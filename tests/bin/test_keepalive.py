"""Polling API clients keep one connection: gunicorn, started with bin/launch.py's own command line,
keeps an idle keep-alive connection open well past common poll intervals."""

import subprocess
import time

import pytest
import requests

from tests.bin.test_launch import free_port, launch
from tests.helpers import ROOT, stop_process_group, subprocess_env, wait_for
from webapp.accounts.services import api_token_create

# Seconds idle between polls: at and just past gunicorn's old 2 s keep-alive, and a few longer
# waits; about 55 s in all.
GAPS = [2.0, 2.3, 2.0, 3.0, 2.0, 2.3, 5.0, 2.0, 2.3, 10.0, 2.0, 20.0]


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_one_session_polls_for_a_minute_over_one_connection_without_a_reset(alice, tmp_path):
    _, key = api_token_create(user=alice)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/projects/"
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            launch.gunicorn_argv(f"127.0.0.1:{port}"),
            cwd=ROOT,
            env=subprocess_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def answers() -> bool:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                return requests.get(url, timeout=5).status_code == 401
            except requests.ConnectionError:
                return False

        wait_for(answers, timeout=30, interval=0.25, message="gunicorn to answer")
        with requests.Session() as session:
            session.headers["Authorization"] = f"Token {key}"
            # The local port of the connection each answer came on (urllib3 silently reconnects a
            # connection the server closed, so its own connection count would not show it).
            ports = []
            session.hooks["response"].append(lambda r, **_: ports.append(r.raw.connection.sock.getsockname()[1]))
            # Any ConnectionError (a reset on a reused connection) fails the test here.
            statuses = [session.get(url, timeout=10).status_code]
            for gap in GAPS:
                time.sleep(gap)
                statuses.append(session.get(url, timeout=10).status_code)
    finally:
        stop_process_group(server)
    assert statuses == [200] * (len(GAPS) + 1)
    # One connection for the whole minute: gunicorn never closed it while it idled between polls.
    assert len(set(ports)) == 1, f"answers came on {len(set(ports))} connections (local ports {ports})"
