import pytest
from PIL import Image

from tests.projects.images import (
    PLANTED,
    SUFFIX,
    class_files,
    image_bytes,
    leaky_files,
    picture_files,
    planted_copies,
    split_files,
    write_tree,
)
from webapp.projects.ingest import BuildOptions, IngestError, build_dataset, similar

OPTIONS = BuildOptions(max_pixels=1_000_000, validation_fraction=0.2, seed=7)


def _build(tmp_path, files, options=OPTIONS):
    source = write_tree(tmp_path / "src", files)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return build_dataset(source, out, options=options), out


def _failure(tmp_path, files) -> str:
    with pytest.raises(IngestError) as caught:
        _build(tmp_path, files)
    return caught.value.message


def _counts(result):
    return {c["name"]: (c["train_count"], c["validation_count"]) for c in result.classes}


def _stored(out, split):
    return sorted(p.relative_to(out / split).as_posix() for p in (out / split).rglob("*.jpg"))


def test_it_ingests_train_and_validation_folders(tmp_path):
    result, out = _build(tmp_path, split_files(train=5, validation=2))
    assert result.report["layout"] == "splits"
    assert _counts(result) == {"cats": (5, 2), "dogs": (5, 2)}
    assert _stored(out, "validation") == ["cats/cats0.jpg", "cats/cats1.jpg", "dogs/dogs0.jpg", "dogs/dogs1.jpg"]
    assert len(result.content_hash) == 64


def test_it_unwraps_one_top_folder(tmp_path):
    result, out = _build(tmp_path, split_files("data/", train=3, validation=1))
    assert result.report["layout"] == "splits" and result.report["wrapper"] == "data"
    assert _counts(result) == {"cats": (3, 1), "dogs": (3, 1)}
    assert (out / "train" / "cats" / "cats0.jpg").is_file()


def test_it_splits_class_folders_stratified_with_a_fixed_seed(tmp_path):
    files = class_files("", classes=("cats", "dogs", "fish"), per_class=10)
    result, out = _build(tmp_path, files)
    assert result.report["layout"] == "class-folders"
    assert result.report["validation_fraction"] == 0.2
    assert _counts(result) == {"cats": (8, 2), "dogs": (8, 2), "fish": (8, 2)}
    again, out_again = _build(tmp_path / "again", files)
    assert _stored(out, "validation") == _stored(out_again, "validation")
    assert again.content_hash == result.content_hash
    assert not (out / "_pool").exists()


def test_it_ignores_hidden_files_quietly_and_lists_other_non_images(tmp_path):
    files = split_files(train=3, validation=1)
    files.update(
        {
            "__MACOSX/train/cats/._cats0.jpg": b"resource fork",
            "train/.DS_Store": b"x",
            "train/cats/Thumbs.db": b"x",
            "train/cats/.hidden.jpg": b"x",
            "train/cats/notes.txt": b"hello",
            "train/dogs/nested.zip": b"PK\x05\x06" + bytes(18),
        }
    )
    result, _ = _build(tmp_path, files)
    skipped = {s["file"]: s["reason"] for s in result.report["skipped"]["items"]}
    assert skipped == {
        "train/cats/notes.txt": "not an image file (.txt)",
        "train/dogs/nested.zip": "archive inside the upload (inner archives are not opened)",
    }
    assert result.report["totals"]["ignored"] == 4


def test_it_lists_corrupt_images_and_keeps_the_rest(tmp_path):
    files = split_files(train=3, validation=1)
    files["train/cats/broken.jpg"] = image_bytes(99, size=(64, 64))[:200]
    files["train/dogs/fake.jpg"] = b"not really a jpeg"
    result, out = _build(tmp_path, files)
    reasons = {s["file"]: s["reason"] for s in result.report["skipped"]["items"]}
    assert reasons["train/cats/broken.jpg"].startswith("truncated or corrupt")
    assert reasons["train/dogs/fake.jpg"].startswith("not an image")
    assert _counts(result) == {"cats": (3, 1), "dogs": (3, 1)}
    assert not (out / "train" / "cats" / "broken.jpg").exists()


def test_it_fails_with_fewer_than_two_classes(tmp_path):
    assert _failure(tmp_path, class_files("", classes=("cats",), per_class=4)) == (
        "a dataset needs at least 2 classes; found 1 ('cats')"
    )


def test_it_fails_naming_a_class_without_training_images(tmp_path):
    files = split_files(train=3, validation=1)
    files = {k: v for k, v in files.items() if not k.startswith("train/dogs/")}
    files["train/dogs/bad.jpg"] = b"garbage"
    assert "class(es) without training images: 'dogs'" in _failure(tmp_path, files)


def test_it_fails_naming_a_class_missing_from_validation(tmp_path):
    files = split_files(classes=("cats", "dogs", "fish"), train=3, validation=1)
    files = {k: v for k, v in files.items() if not k.startswith("validation/fish/")}
    message = _failure(tmp_path, files)
    assert "only in train: 'fish'" in message and "only in validation: none" in message


def test_it_fails_naming_classes_when_the_splits_differ(tmp_path):
    files = split_files(train=3, validation=1)
    files.update(class_files("validation/", classes=("birds",), per_class=1, start=250))
    message = _failure(tmp_path, files)
    assert "class sets differ" in message and "only in validation: 'birds'" in message


def test_it_fails_a_class_too_small_to_split(tmp_path):
    files = class_files("", classes=("cats",), per_class=5)
    files["dogs/only.jpg"] = image_bytes(77)
    assert "missing from validation" in _failure(tmp_path, files) and "'dogs'" in _failure(tmp_path, files)


def test_it_reports_duplicates_within_a_split(tmp_path):
    files = split_files(train=3, validation=1)
    files["train/cats/copy.png"] = _as_png(files["train/cats/cats0.jpg"])
    result, _ = _build(tmp_path, files)
    groups = result.report["duplicates"]["items"]
    assert [(g["split"], g["files"]) for g in groups] == [("train", ["train/cats/cats0.jpg", "train/cats/copy.png"])]
    assert any("identical images" in w for w in result.warnings)


def test_it_reports_leakage_between_train_and_validation(tmp_path):
    files = split_files(train=3, validation=1)
    files["validation/dogs/leak.jpg"] = files["train/dogs/dogs2.jpg"]
    result, _ = _build(tmp_path, files)
    leaks = result.report["leakage"]["items"]
    assert [(x["train"], x["validation"]) for x in leaks] == [(["train/dogs/dogs2.jpg"], ["validation/dogs/leak.jpg"])]
    assert result.report["totals"]["leaked_images"] == 1


def test_it_reports_image_sizes_and_class_imbalance(tmp_path):
    files = class_files("train/", classes=("cats",), per_class=8)
    files.update(class_files("train/", classes=("dogs",), per_class=1, start=50))
    files.update(class_files("validation/", per_class=1, start=90))
    files["train/dogs/wide.jpg"] = image_bytes(60, size=(40, 10))
    result, _ = _build(tmp_path, files)
    assert result.report["image_sizes"] == {
        "width": {"min": 16, "median": 16, "max": 40},
        "height": {"min": 10, "median": 12, "max": 12},
    }
    assert any("Class imbalance: 'cats' has 8 training images but 'dogs' has 2 (4.0x)" in w for w in result.warnings)


def test_it_makes_a_few_thumbnails_per_class(tmp_path):
    result, out = _build(tmp_path, split_files(train=6, validation=1))
    assert result.report["thumbnails"] == {
        "cats": ["0.jpg", "1.jpg", "2.jpg", "3.jpg"],
        "dogs": ["0.jpg", "1.jpg", "2.jpg", "3.jpg"],
    }
    with Image.open(out / "thumbs" / "cats" / "0.jpg") as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 128


def _as_png(jpeg: bytes) -> bytes:
    import io

    with Image.open(io.BytesIO(jpeg)) as image:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()


# --- test split ------------------------------------------------------------------------------


def _split_of(out, name):
    return sorted(p.relative_to(out).parts[0] for p in out.glob(f"*/*/{name}.*") if p.parts[-3] != "thumbs")


def test_it_keeps_an_uploaded_test_folder(tmp_path):
    files = split_files(train=5, validation=2)
    files.update(class_files("test/", per_class=3, start=200))
    result, out = _build(tmp_path, files)
    assert [(c["name"], c["test_count"]) for c in result.classes] == [("cats", 3), ("dogs", 3)]
    assert result.report["test_split"] == {"source": "uploaded", "fraction": None, "reason": ""}
    assert result.report["totals"]["test"] == 6 and (out / "test" / "cats").is_dir()


def test_it_refuses_a_test_folder_that_misses_a_class(tmp_path):
    files = split_files(train=5, validation=2)
    files.update(class_files("test/", classes=("cats",), per_class=3, start=200))
    with pytest.raises(IngestError, match="class\\(es\\) missing from test \\(no usable test images\\): 'dogs'"):
        _build(tmp_path, files)


def test_it_carves_a_stratified_seeded_test_split_keeping_copies_together(tmp_path):
    files = class_files("train/", per_class=20)
    files.update(class_files("validation/", per_class=3, start=100))
    files["train/cats/original.jpg"] = image_bytes(555)
    files["train/cats/copy-of-original.png"] = _as_png(files["train/cats/original.jpg"])
    options = BuildOptions(max_pixels=1_000_000, test_fraction=0.2, seed=7)
    result, out = _build(tmp_path, files, options)
    assert result.report["test_split"] == {"source": "carved", "fraction": 0.2, "reason": ""}
    assert [(c["name"], c["train_count"], c["test_count"]) for c in result.classes][1] == ("dogs", 16, 4)
    assert _split_of(out, "original") == _split_of(out, "copy-of-original")  # one picture, one split
    assert result.report["leakage"]["total"] == 0
    again, _ = _build(tmp_path / "again", files, options)
    assert again.content_hash == result.content_hash  # the same seed carves the same images


def test_it_carves_no_test_split_from_too_few_images_and_says_why(tmp_path):
    options = BuildOptions(max_pixels=1_000_000, test_fraction=0.2, seed=7)
    result, out = _build(tmp_path, split_files(train=5, validation=2), options)
    assert result.report["test_split"]["source"] == "none"
    assert "too few training images in 'cats' (5)" in result.report["test_split"]["reason"]
    assert any(w.startswith("No test split: too few training images") for w in result.warnings)
    assert not (out / "test").exists()


def test_it_reports_leakage_into_the_test_split(tmp_path):
    files = split_files(train=3, validation=1)
    files["test/cats/t0.jpg"] = image_bytes(300)
    files["test/dogs/leak.jpg"] = files["train/dogs/dogs2.jpg"]
    result, _ = _build(tmp_path, files)
    leaks = result.report["leakage"]["items"]
    assert [(x["train"], x["validation"], x["test"]) for x in leaks] == [
        (["train/dogs/dogs2.jpg"], [], ["test/dogs/leak.jpg"])
    ]


# --- near duplicates -------------------------------------------------------------------------


def test_it_finds_every_planted_near_copy_as_leakage_and_nothing_else(tmp_path):
    result, _ = _build(tmp_path, leaky_files())
    leaks = result.report["leakage"]["items"]
    found = {(g["train"][0], (g["validation"] or g["test"])[0]) for g in leaks}
    assert found == {
        (
            f"train/cats/original-{kind}.png",
            f"{'validation' if n % 2 == 0 else 'test'}/cats/{kind}.{SUFFIX.get(kind, 'png')}",
        )
        for n, kind in enumerate(PLANTED)
    }
    assert all(g["kind"] == "near" and g["distance"] <= similar.THRESHOLD for g in leaks)
    totals = result.report["totals"]
    assert (totals["leaked_images"], totals["near_leaked_images"], totals["leaked_copies"]) == (5, 5, 5)
    assert totals["duplicate_groups"] == 0 and result.report["duplicates"]["items"] == []
    assert any("5 image(s) appear in more than one" in w and "5 of them as near copies" in w for w in result.warnings)


def test_it_reports_near_copies_within_a_split_with_their_kind(tmp_path):
    files = split_files(train=3, validation=1)
    original, copies = planted_copies(42)
    files |= {"train/cats/a.png": original, "train/cats/a-q60.jpg": copies["q60"]}
    files |= {"train/cats/a-crop.png": copies["crop4"], "train/cats/a-resized.png": copies["resized"]}
    _, others = planted_copies(43)
    files |= {"train/dogs/b.jpg": others["jpeg"], "train/dogs/b.png": others["jpeg-as-png"]}
    result, _ = _build(tmp_path, files)
    groups = {tuple(g["files"]): (g["kind"], g["distance"]) for g in result.report["duplicates"]["items"]}
    four = ("train/cats/a-crop.png", "train/cats/a-q60.jpg", "train/cats/a-resized.png", "train/cats/a.png")
    assert groups[four][0] == "near" and 0 < groups[four][1] <= similar.THRESHOLD
    assert groups[("train/dogs/b.jpg", "train/dogs/b.png")] == ("identical", 0)
    assert len(groups) == 2 and result.report["totals"]["near_duplicate_groups"] == 1
    assert any("2 group(s) of identical images within a split (1 of them near copies" in w for w in result.warnings)


def test_identical_pixels_stay_identical_in_kind(tmp_path):
    files = split_files(train=3, validation=1)
    _, copies = planted_copies(43)
    files |= {"train/cats/b.jpg": copies["jpeg"], "validation/cats/b.png": copies["jpeg-as-png"]}
    result, _ = _build(tmp_path, files)
    [leak] = result.report["leakage"]["items"]
    assert (leak["kind"], leak["distance"], leak["train"], leak["validation"]) == (
        "identical",
        0,
        ["train/cats/b.jpg"],
        ["validation/cats/b.png"],
    )


def test_when_it_splits_class_folders_near_copies_stay_in_one_split(tmp_path):
    files = {}
    for class_name, start in (("cats", 0), ("dogs", 50)):
        files |= picture_files("", class_name, range(start, start + 10))
    for n in range(6):
        original, copies = planted_copies(600 + n)
        files |= {f"cats/o{n}.png": original, f"cats/c{n}.jpg": copies["q60"], f"cats/k{n}.png": copies["crop4"]}
    result, out = _build(tmp_path, files)
    assert result.report["leakage"]["total"] == 0
    for n in range(6):
        assert _split_of(out, f"o{n}") == _split_of(out, f"c{n}") == _split_of(out, f"k{n}")
    assert result.report["totals"]["duplicate_groups"] == 6


def test_a_version_without_leaked_images_keeps_the_train_copies(tmp_path):
    options = BuildOptions(max_pixels=1_000_000, seed=7, drop_leaked=True)
    result, out = _build(tmp_path, leaky_files(), options)
    assert result.report["leakage"]["total"] == 0 and result.report["totals"]["leaked_copies"] == 0
    removed = result.report["without_leaks"]
    assert removed["total"] == 5
    assert all(not f.startswith("train/") for f in removed["items"])
    for kind in PLANTED:
        assert (out / "train" / "cats" / f"original-{kind}.png").is_file()
        assert not list(out.glob(f"*/cats/{kind}.*"))
    assert [(c["name"], c["train_count"], c["validation_count"], c["test_count"]) for c in result.classes] == [
        ("cats", 13, 3, 3),
        ("dogs", 8, 3, 3),
    ]
    assert _build(tmp_path / "plain", leaky_files())[0].report["without_leaks"] is None


def test_it_writes_thumbnails_of_the_images_in_listed_groups(tmp_path):
    result, out = _build(tmp_path, leaky_files())
    shown = result.report["group_thumbnails"]
    assert len(shown) == 10 and sorted(shown.values()) == list(range(10))
    assert {"train/cats/original-q60.png", "validation/cats/q60.jpg", "test/cats/crop2.png"} <= set(shown)
    with Image.open(out / "groups" / f"{shown['validation/cats/q60.jpg']}.jpg") as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 128
    capped = BuildOptions(max_pixels=1_000_000, seed=7, max_group_thumbnails=3)
    result, out = _build(tmp_path / "capped", leaky_files(), capped)
    assert len(result.report["group_thumbnails"]) == 3 and len(list((out / "groups").iterdir())) == 3
