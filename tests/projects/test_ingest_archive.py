import stat
import zipfile

import pytest

from tests.projects.images import image_bytes, make_zip, patch_bytes, set_encrypted_flag
from webapp.projects.ingest import ArchiveLimits, IngestError, extract_zip

LIMITS = ArchiveLimits(max_total_bytes=50 * 1024 * 1024, max_entries=1000, max_ratio=100)


def _extract(tmp_path, zip_path, limits=LIMITS):
    dest = tmp_path / "dest"
    dest.mkdir()
    return dest, extract_zip(zip_path, dest, limits=limits)


def _refused(tmp_path, zip_path, limits=LIMITS) -> str:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IngestError) as caught:
        extract_zip(zip_path, dest, limits=limits)
    assert list(dest.rglob("*")) == [], "nothing may be written when an entry is refused"
    return caught.value.message


def test_it_extracts_a_plain_archive(tmp_path):
    zip_path = make_zip(tmp_path / "a.zip", {"train/cats/a.jpg": image_bytes(1), "train/dogs/b.jpg": image_bytes(2)})
    dest, result = _extract(tmp_path, zip_path)
    assert (dest / "train/cats/a.jpg").read_bytes() == image_bytes(1)
    assert result.files == 2
    assert result.bytes_written == len(image_bytes(1)) + len(image_bytes(2))


def test_it_rejects_zip_slip_entries(tmp_path):
    zip_path = make_zip(tmp_path / "a.zip", {"ok/a.jpg": b"x", "train/../../evil.jpg": b"x"})
    message = _refused(tmp_path, zip_path)
    assert "train/../../evil.jpg" in message
    assert not (tmp_path / "evil.jpg").exists()


def test_it_rejects_absolute_paths(tmp_path):
    zip_path = tmp_path / "a.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("ok/a.jpg", b"x")
        info = zipfile.ZipInfo("xetc/passwd.jpg")
        archive.writestr(info, b"x")
    patch_bytes(zip_path, b"xetc/passwd.jpg", b"/etc/passwd.jpg")
    message = _refused(tmp_path, zip_path)
    assert "'/etc/passwd.jpg'" in message and "absolute" in message


def test_it_rejects_windows_drive_paths(tmp_path):
    zip_path = make_zip(tmp_path / "a.zip", {"C:/Windows/a.jpg": b"x"})
    message = _refused(tmp_path, zip_path)
    assert "C:/Windows/a.jpg" in message and "absolute" in message


def test_it_rejects_symlink_entries(tmp_path):
    zip_path = tmp_path / "a.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("train/cats/a.jpg", image_bytes(1))
        link = zipfile.ZipInfo("train/cats/link.jpg")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    message = _refused(tmp_path, zip_path)
    assert "train/cats/link.jpg" in message and "symbolic link" in message


def test_it_rejects_backslashes(tmp_path):
    zip_path = make_zip(tmp_path / "a.zip", {"train\\..\\evil.jpg": b"x"})
    message = _refused(tmp_path, zip_path)
    assert "backslash" in message and "evil.jpg" in message


def test_it_rejects_nul_in_names(tmp_path):
    zip_path = make_zip(tmp_path / "a.zip", {"train/cats/aXb.jpg": b"x"})
    patch_bytes(zip_path, b"aXb.jpg", b"a\x00b.jpg")
    message = _refused(tmp_path, zip_path)
    assert "NUL" in message and "train/cats/a\\x00b.jpg" in message


def test_it_rejects_encrypted_entries(tmp_path):
    zip_path = make_zip(tmp_path / "a.zip", {"train/cats/secret.jpg": image_bytes(1)})
    set_encrypted_flag(zip_path)
    message = _refused(tmp_path, zip_path)
    assert "train/cats/secret.jpg" in message and "encrypted" in message


def test_it_rejects_too_many_entries(tmp_path):
    zip_path = make_zip(tmp_path / "a.zip", {f"c/{n}.jpg": b"x" for n in range(11)})
    message = _refused(tmp_path, zip_path, ArchiveLimits(max_total_bytes=10**9, max_entries=10, max_ratio=100))
    assert "11 entries" in message and "limit of 10" in message


def test_it_rejects_archives_that_expand_past_the_total_limit(tmp_path):
    files = {f"c/{n}.bin": bytes(range(256)) * 400 for n in range(5)}  # 5 x 100 KB
    zip_path = make_zip(tmp_path / "a.zip", files, compression=zipfile.ZIP_STORED)
    limits = ArchiveLimits(max_total_bytes=250_000, max_entries=100, max_ratio=100)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IngestError) as caught:
        extract_zip(zip_path, dest, limits=limits)
    assert "limit of 250000 bytes" in caught.value.message and "c/2.bin" in caught.value.message


def test_it_rejects_a_compression_ratio_bomb(tmp_path):
    zip_path = make_zip(tmp_path / "a.zip", {"train/cats/zeros.jpg": bytes(20 * 1024 * 1024)})
    message = _refused(tmp_path, zip_path)
    assert "train/cats/zeros.jpg" in message and "100x" in message


def test_it_does_not_open_inner_archives(tmp_path):
    inner = make_zip(tmp_path / "inner.zip", {"x/evil.jpg": image_bytes(1)})
    zip_path = make_zip(tmp_path / "a.zip", {"train/cats/inner.zip": inner.read_bytes()})
    dest, result = _extract(tmp_path, zip_path)
    assert (dest / "train/cats/inner.zip").read_bytes() == inner.read_bytes()
    assert not (dest / "train/cats/x").exists()
    assert result.files == 1


def test_it_skips_hidden_and_system_entries_quietly(tmp_path):
    zip_path = make_zip(
        tmp_path / "a.zip",
        {
            "__MACOSX/train/._a.jpg": b"x",
            "train/.DS_Store": b"x",
            "train/cats/Thumbs.db": b"x",
            "train/cats/a.jpg": b"x",
        },
    )
    dest, result = _extract(tmp_path, zip_path)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == ["train/cats/a.jpg"]
    assert result.ignored == 3


def test_it_rejects_a_bomb_of_many_small_entries_before_writing_anything(tmp_path):
    # The break-it reproduction, scaled down: zero-filled entries of exactly 1 MiB each (the
    # per-entry ratio check lets these through), 500 MiB from a zip of a few hundred KB.
    zip_path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for n in range(500):
            archive.writestr(f"train/cats/{n:04}.jpg", bytes(1 << 20))
    assert zip_path.stat().st_size < 1_000_000
    limits = ArchiveLimits(max_total_bytes=10**12, max_entries=10_000, max_ratio=100)
    message = _refused(tmp_path, zip_path, limits)
    assert "past 100x its own size" in message and f"of {zip_path.stat().st_size} bytes" in message
    assert "at entry 'train/cats/" in message and "zip bomb" in message


def test_it_accepts_many_small_compressible_entries_within_the_archive_ratio(tmp_path):
    files = {f"train/cats/{n}.bmp": bytes(20_000) for n in range(30)}  # 600 KB, under the slack
    dest, result = _extract(tmp_path, make_zip(tmp_path / "a.zip", files))
    assert result.files == 30 and result.bytes_written == 600_000


def test_it_bounds_the_total_of_many_small_entries(tmp_path):
    zip_path = make_zip(tmp_path / "a.zip", {f"c/{n}.bin": bytes(100_000) for n in range(40)})
    limits = ArchiveLimits(max_total_bytes=1_000_000, max_entries=100, max_ratio=10**6)
    message = _refused(tmp_path, zip_path, limits)
    assert "past the limit of 1000000 bytes (at entry 'c/10.bin')" in message


@pytest.mark.parametrize("order", [["a/b", "a/b/c.jpg"], ["a/b/c.jpg", "a/b"]])
def test_it_reports_a_file_folder_clash_naming_both_entries(tmp_path, order):
    zip_path = make_zip(tmp_path / "a.zip", {name: image_bytes(1) for name in order})
    message = _refused(tmp_path, zip_path)
    assert "'a/b'" in message and "'a/b/c.jpg'" in message
    assert "more than once" not in message and "file" in message and "folder" in message


def test_it_reports_a_folder_entry_clashing_with_a_file(tmp_path):
    zip_path = tmp_path / "a.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("train/cats", b"x")
        archive.writestr(zipfile.ZipInfo("train/cats/"), b"")
    message = _refused(tmp_path, zip_path)
    assert "'train/cats'" in message and "'train/cats/'" in message


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_it_still_reports_a_real_duplicate_as_one(tmp_path):
    zip_path = tmp_path / "a.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("train/cats/a.jpg", image_bytes(1))
        archive.writestr("train/cats/a.jpg", image_bytes(2))
    message = _refused(tmp_path, zip_path)
    assert message == "zip entry 'train/cats/a.jpg' appears more than once in the archive"
