from pathlib import Path

from webapp.core.redact import without_server_paths


def test_it_cuts_paths_under_server_folders_to_their_last_part(settings, tmp_path):
    settings.TL_STORAGE_ROOT = tmp_path / "storage"
    model = settings.TL_STORAGE_ROOT / "models" / "7" / "model.keras"
    assert without_server_paths(f"File not found: filepath={model}. Please ensure") == (
        "File not found: filepath=model.keras. Please ensure"
    )
    assert without_server_paths(f"[Errno 28] No space left on device: '{model.parent}/'") == (
        "[Errno 28] No space left on device: '7'"
    )
    assert without_server_paths(f"code at {settings.BASE_DIR / 'webapp' / 'urls.py'}:12") == "code at urls.py:12"


def test_it_leaves_other_paths_and_lookalike_folders_alone(settings):
    assert without_server_paths("No API endpoint at /api/v1/projects/x/.") == "No API endpoint at /api/v1/projects/x/."
    assert without_server_paths("zip entry 'train/cats/a.jpg' is corrupt") == "zip entry 'train/cats/a.jpg' is corrupt"
    settings.TL_STORAGE_ROOT = Path("/srv/transferlab-test/storage")
    lookalike = "/srv/transferlab-test/storage-old/notes.txt"
    assert without_server_paths(lookalike) == lookalike
    assert without_server_paths("kept in /srv/transferlab-test/storage.") == "kept in storage."
