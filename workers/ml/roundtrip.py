"""Load a saved model back in a fresh process, the way serving does, and compare its answers.

A model is only done when the file on disk serves (docs/decisions.md, "Round trip before
success"): a layer that does not deserialize, a custom layer that was not registered, or
weights that did not make it into the file all show up here, before a user publishes it.
The child process imports nothing the training process built, so nothing can be served
from memory by accident.

Run as ``python -m workers.ml.roundtrip MODEL_DIR SHA256 IMAGE...``: prints a JSON object
``{"probabilities": [[...], ...]}`` or ``{"error": "..."}``. A training run starts the process ahead
instead (``Verifier``, ``--wait``): it imports TensorFlow while the model trains, then reads the same
arguments as one JSON line, so the check does not wait for an import of several seconds. It is still
a new process that never held the trained model (docs/decisions.md, "Round trip before success").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
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
    """A fresh process, started before training, that loads the saved model when asked (once).

    ``with Verifier() as verifier:`` ends the process however the block ends.
    """

    def __init__(self):
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in close()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "workers.ml.roundtrip", "--wait"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=_child_env(),
            cwd=_ROOT,
        )

    def probabilities(self, model_dir: Path, sha256: str, image_paths: list[Path]) -> np.ndarray:
        request = json.dumps({"model_dir": str(model_dir), "sha256": sha256, "paths": [str(p) for p in image_paths]})
        try:
            stdout, _ = self._process.communicate(request + "\n", timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.close()
            raise MLError(f"loading the saved model back took over {TIMEOUT_SECONDS} s") from None
        self._stderr.seek(0)
        return _answer(stdout, self._stderr.read(), self._process.returncode)

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
    expected: np.ndarray,
    *,
    tolerance: float = TOLERANCE,
    verifier: Verifier | None = None,
) -> RoundTrip:
    """Raise MLError unless the saved model, loaded fresh, answers ``expected`` within ``tolerance``.

    With ``verifier``, its waiting process loads the model; otherwise a new one is started.
    """
    started = time.perf_counter()
    if verifier is not None:
        served = verifier.probabilities(model_dir, sha256, image_paths)
    else:
        served = served_probabilities(model_dir, sha256, image_paths)
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


def _main(argv: list[str]) -> int:
    if argv == ["--wait"]:
        # Import what loading needs now, then wait for the one request (EOF: the run ended without one).
        import workers.ml.predict  # noqa: F401

        line = sys.stdin.readline()
        if not line.strip():
            return 0
        request = json.loads(line)
        argv = [request["model_dir"], request["sha256"], *request["paths"]]
    model_dir, sha256, *paths = argv
    keras_file = Path(model_dir) / "model.keras"
    # Checked again by LoadedModel.load; first here so that a wrong file costs no TensorFlow start.
    if keras_file.is_file() and file_sha256(keras_file) != sha256:
        print(json.dumps({"error": "the saved model file does not match its recorded checksum"}), flush=True)
        return 1
    try:
        from workers.ml.predict import LoadedModel

        loaded = LoadedModel.load(Path(model_dir), expected_sha256=sha256)
        probs = loaded.predict([Path(p).read_bytes() for p in paths])
    except Exception as exc:  # noqa: BLE001 - every failure is reported to the parent as data
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps({"probabilities": probs.astype(float).tolist()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
