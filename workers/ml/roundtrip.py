"""Load a saved model back in a fresh process, the way serving does, and compare its answers.

A model is only done when the file on disk serves (docs/decisions.md, "Round trip before
success"): a layer that does not deserialize, a custom layer that was not registered, or
weights that did not make it into the file all show up here, before a user publishes it.
The child process imports nothing the training process built, so nothing can be served
from memory by accident.

Run as ``python -m workers.ml.roundtrip MODEL_DIR SHA256 IMAGE...``: prints a JSON object
``{"probabilities": [[...], ...]}`` or ``{"error": "..."}``. A training run starts the process ahead
instead (``Verifier``, ``--wait``): it imports TensorFlow while the model trains, then reads the same
arguments as JSON lines, one answer line each, until its input ends, so the check does not wait for
an import of several seconds. A warm worker keeps one such process for many jobs, as a serving process
loads many models. Either way it is a process that never held the trained model, and it forgets each
model once it has answered (docs/decisions.md, "Round trip before success").
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.ml.errors import MLError
from workers.ml.hashing import file_sha256

TOLERANCE = 1e-5
TIMEOUT_SECONDS = 600
_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RoundTrip:
    """What the fresh process answered, against the in-memory model."""

    n: int
    max_abs_diff: float
    seconds: float

    def as_dict(self) -> dict:
        return {"n": self.n, "max_abs_diff": self.max_abs_diff, "seconds": round(self.seconds, 2)}


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _answer(stdout: str, stderr: str, returncode: int | None) -> np.ndarray:
    """The probabilities a child printed; MLError with its cause otherwise."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (stderr or "").strip().splitlines()[-3:]
        raise MLError(
            f"loading the saved model back in a fresh process failed (exit code {returncode}): " + " | ".join(tail)
        ) from None
    if "error" in answer:
        raise MLError(f"the saved model does not load back as serving loads it: {answer['error']}")
    return np.asarray(answer["probabilities"], np.float32)


def served_probabilities(model_dir: Path, sha256: str, image_paths: list[Path]) -> np.ndarray:
    """Probabilities of ``image_paths`` from ``model_dir`` loaded in a new Python process."""
    cmd = [sys.executable, "-m", "workers.ml.roundtrip", str(model_dir), sha256, *map(str, image_paths)]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, env=_child_env(), cwd=_ROOT, check=False
        )
    except subprocess.TimeoutExpired:
        raise MLError(f"loading the saved model back took over {TIMEOUT_SECONDS} s") from None
    return _answer(done.stdout, done.stderr, done.returncode)


class Verifier:
    """A fresh process, started before it is needed, that loads saved models when asked.

    One request at a time, any number of them; ``with Verifier() as verifier:`` ends the process
    however the block ends. A verifier whose process died (or timed out) answers MLError for that
    request and is no longer ``alive``: its owner starts another.
    """

    def __init__(self):
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in close()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "workers.ml.roundtrip", "--wait"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,  # answers are read with select() on the pipe: no Python buffer in between
            env=_child_env(),
            cwd=_ROOT,
        )
        self._pending = b""
        self._awaiting = False  # a request was sent whose answer was not read (its reader was interrupted)

    @property
    def alive(self) -> bool:
        return self._process.poll() is None and not self._stderr.closed

    def send(self, model_dir: Path, sha256: str, image_paths: list[Path]) -> None:
        """Ask for ``image_paths``' probabilities from ``model_dir``; ``receive`` reads the answer."""
        if self._awaiting:  # an earlier check was interrupted (a time limit, say): its answer is not this one's
            with contextlib.suppress(MLError):
                self.receive()
        request = json.dumps({"model_dir": str(model_dir), "sha256": sha256, "paths": [str(p) for p in image_paths]})
        self._stderr.seek(0)
        self._stderr.truncate()  # this request's messages only (the child writes at the shared offset)
        try:
            self._process.stdin.write(request.encode() + b"\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            pass  # the process is gone: receive() reports how it ended
        self._awaiting = True

    def receive(self) -> np.ndarray:
        """The answer to the last ``send``; MLError with the cause if the model did not load or the process died."""
        try:
            line = self._read_line(time.monotonic() + TIMEOUT_SECONDS)
            self._awaiting = False
        except TimeoutError:
            self.close()
            raise MLError(f"loading the saved model back took over {TIMEOUT_SECONDS} s") from None
        returncode = None
        if not line:  # the process ended without answering
            self._process.wait()
            returncode = self._process.returncode
        self._stderr.seek(0)
        return _answer(line.decode(errors="replace"), self._stderr.read(), returncode)

    def _read_line(self, deadline: float) -> bytes:
        """The next line the process prints that is an answer (a JSON object); b"" at its end."""
        out = self._process.stdout
        while True:
            while b"\n" not in self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([out], [], [], remaining)[0]:
                    raise TimeoutError
                chunk = os.read(out.fileno(), 1 << 16)
                if not chunk:
                    return b""
                self._pending += chunk
            line, self._pending = self._pending.split(b"\n", 1)
            if line.startswith(b"{"):
                return line

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream and not stream.closed:
                stream.close()
        self._stderr.close()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_round_trip(
    model_dir: Path,
    sha256: str,
    image_paths: list[Path],
    expected: np.ndarray | Callable[[], np.ndarray],
    *,
    tolerance: float = TOLERANCE,
    verifier: Verifier | None = None,
) -> RoundTrip:
    """Raise MLError unless the saved model, loaded fresh, answers ``expected`` within ``tolerance``.

    With ``verifier``, its waiting process loads the model; otherwise a new one is started.
    ``expected`` may be a function computing the in-memory model's answer: it then runs while the
    other process loads the file and predicts, each on its own core.
    """
    started = time.perf_counter()
    if verifier is not None:
        verifier.send(model_dir, sha256, image_paths)
        expected = expected() if callable(expected) else expected
        served = verifier.receive()
    else:
        served = served_probabilities(model_dir, sha256, image_paths)
        expected = expected() if callable(expected) else expected
    if served.shape != expected.shape:
        raise MLError(
            f"the saved model answers {served.shape[1:]} probabilities per image, the trained one {expected.shape[1:]}"
        )
    diff = float(np.max(np.abs(served - expected))) if expected.size else 0.0
    if not diff <= tolerance:
        raise MLError(
            f"the saved model, loaded back, answers differently from the trained one "
            f"(max probability difference {diff:.2e} over {len(image_paths)} validation images, "
            f"tolerance {tolerance:.0e}); it would not serve what was evaluated"
        )
    return RoundTrip(n=len(image_paths), max_abs_diff=diff, seconds=time.perf_counter() - started)


def _answer_one(model_dir: str, sha256: str, paths: list[str]) -> dict:
    keras_file = Path(model_dir) / "model.keras"
    # Checked again by LoadedModel.load; first here so that a wrong file costs no TensorFlow start.
    if keras_file.is_file() and file_sha256(keras_file) != sha256:
        return {"error": "the saved model file does not match its recorded checksum"}
    try:
        from workers.ml.predict import LoadedModel

        loaded = LoadedModel.load(Path(model_dir), expected_sha256=sha256)
        probs = loaded.predict([Path(p).read_bytes() for p in paths])
    except Exception as exc:  # noqa: BLE001 - every failure is reported to the parent as data
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"probabilities": probs.astype(float).tolist()}


def _main(argv: list[str]) -> int:
    if argv != ["--wait"]:
        model_dir, sha256, *paths = argv
        answer = _answer_one(model_dir, sha256, paths)
        print(json.dumps(answer), flush=True)
        return 1 if "error" in answer else 0
    # Import what loading needs now, then answer requests until the input ends (the owner closed it,
    # or died: a warm worker's verifier goes with its worker).
    import gc

    import keras

    import workers.ml.predict  # noqa: F401

    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        print(json.dumps(_answer_one(request["model_dir"], request["sha256"], request["paths"])), flush=True)
        # Each model is forgotten once answered: the next one loads into a clean session.
        keras.backend.clear_session()
        gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
