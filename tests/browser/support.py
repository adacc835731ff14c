"""Helpers shared by the browser tests."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PASSWORD = "correct-horse-battery-1"


def screenshot(page, name: str) -> Path:
    """A full-page PNG under test-artifacts/screenshots/ (git-ignored), for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def write_image_folder(root: Path, *, classes=("green", "red"), train=12, validation=6, size=32) -> Path:
    """`root/data/{train,validation}/<class>/NNN.jpg`: tiny JPEGs, a coloured disc on noise per class."""
    import numpy as np

    from tests.experiments.factories import COLOURS, _image

    rng = np.random.default_rng(7)
    folder = root / "data"
    for split, count in (("train", train), ("validation", validation)):
        for name in classes:
            target = folder / split / name
            target.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (target / f"{name}{i:03d}.jpg").write_bytes(_image(COLOURS[name], rng, size))
    return folder


def drop_file(page, selector: str, data: bytes, name: str, mime: str = "image/jpeg") -> None:
    """Drop a file on `selector` the way a drag from the desktop does (a DataTransfer with one File)."""
    import base64

    transfer = page.evaluate_handle(
        """([b64, name, mime]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, {type: mime}));
            return dt;
        }""",
        [base64.b64encode(data).decode(), name, mime],
    )
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def make_finished_experiment(project, dataset, name: str, config: dict, *, val_accuracy: list[float]):
    """An experiment whose latest run succeeded with these per-epoch validation accuracies (no training)."""
    from webapp.experiments.models import EpochMetric, Experiment, TrainingJob

    experiment = Experiment.objects.create(
        project=project, dataset=dataset, name=name, mode=config["mode"], backbone="vgg16", config=config
    )
    job = TrainingJob.objects.create(
        experiment=experiment,
        status=TrainingJob.Status.SUCCEEDED,
        epochs=len(val_accuracy),
        progress=1.0,
        result={"best_epoch": len(val_accuracy), "evaluation": {"accuracy": val_accuracy[-1]}},
    )
    for epoch, accuracy in enumerate(val_accuracy, start=1):
        EpochMetric.objects.create(
            job=job,
            epoch=epoch,
            loss=round(1.05 - accuracy, 4),
            accuracy=min(1.0, accuracy + 0.05),
            val_loss=round(1.2 - accuracy, 4),
            val_accuracy=accuracy,
        )
    return experiment
