"""Local runs (the README's run command): a secret key generated once into var/, plain-HTTP cookies."""

import os
import secrets
from pathlib import Path

_var = Path(os.environ.get("TL_VAR_DIR", Path(__file__).resolve().parent.parent.parent / "var"))
if not os.environ.get("DJANGO_SECRET_KEY"):
    _key_file = _var / "secret_key"
    if not _key_file.exists():
        _var.mkdir(parents=True, exist_ok=True)
        _tmp = _key_file.with_suffix(".tmp")
        _tmp.write_text(secrets.token_urlsafe(50))
        _tmp.chmod(0o600)
        _tmp.replace(_key_file)
    os.environ["DJANGO_SECRET_KEY"] = _key_file.read_text().strip()
# Local runs serve plain HTTP on 127.0.0.1; secure cookies would make sign-in impossible.
os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")

from .base import *  # noqa: E402,F403
