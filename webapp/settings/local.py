"""Local runs (the README's run command): a secret key generated once into var/, plain-HTTP cookies."""

import os
import secrets
from pathlib import Path

from .private import private_dir, private_file

_var = Path(os.environ.get("TL_VAR_DIR", Path(__file__).resolve().parent.parent.parent / "var"))
if not os.environ.get("DJANGO_SECRET_KEY"):
    _key_file = _var / "secret_key"
    if not _key_file.exists():
        private_dir(_var)
        _tmp = _key_file.with_suffix(f".{os.getpid()}.tmp")
        # Created 0600 before the key is written into it: never readable by others, not even briefly.
        with os.fdopen(os.open(_tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "w") as _fh:
            _fh.write(secrets.token_urlsafe(50))
        try:
            # link, not rename: when two processes start at once, the first key stays and both read it.
            os.link(_tmp, _key_file)
        except FileExistsError:
            pass
        finally:
            _tmp.unlink()
    private_file(_key_file)
    os.environ["DJANGO_SECRET_KEY"] = _key_file.read_text().strip()
# Local runs serve plain HTTP on 127.0.0.1; secure cookies would make sign-in impossible.
os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")

from .base import *  # noqa: E402,F403
