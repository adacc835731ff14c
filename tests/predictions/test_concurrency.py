import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from PIL import Image

from tests.predictions.conftest import CLASSES, make_model, shape_png
from webapp.accounts.services import api_token_create
from webapp.predictions.models import PredictionLog
from webapp.projects.models import Project

THREADS, REQUESTS = 8, 20


@pytest.mark.django_db(transaction=True)
def test_it_answers_8_threads_x_20_requests_correctly_and_in_order(live_server, alice, tiny_model):
    project = Project.objects.create(owner=alice, name="Busy")
    make_model(project, tiny_model, published=True)
    _, token = api_token_create(user=alice)
    pool = [shape_png(CLASSES[i % 3], seed=7000 + i) for i in range(12)]
    arrays = [np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for data in pool]
    expected = tiny_model["loaded"].predict(arrays)
    names = tiny_model["class_names"]
    url = f"{live_server.url}/api/v1/projects/{project.pk}/predict/"

    def client(thread: int) -> list[str]:
        problems = []
        with requests.Session() as session:
            session.headers["Authorization"] = f"Token {token}"
            for i in range(REQUESTS):
                # A different selection and order of images per request: answers must follow it.
                picks = [(thread * 5 + i * 3 + k * 7) % len(pool) for k in range(1 + (thread + i) % 3)]
                files = [("image", (f"{p}.png", pool[p], "image/png")) for p in picks]
                response = session.post(url, files=files, timeout=60)
                if response.status_code != 200:
                    problems.append(f"{thread}/{i}: {response.status_code} {response.text[:200]}")
                    continue
                for pick, prediction in zip(picks, response.json()["predictions"], strict=True):
                    row = expected[pick]
                    if prediction["label"] != names[int(row.argmax())] or not np.allclose(
                        [prediction["probabilities"][n] for n in names], row, atol=1e-5
                    ):
                        problems.append(f"{thread}/{i}: image {pick} answered {prediction}")
        return problems

    with ThreadPoolExecutor(THREADS) as executor:
        problems = [p for result in executor.map(client, range(THREADS)) for p in result]
    assert problems == []
    assert PredictionLog.objects.filter(project=project, status_code=200).count() == THREADS * REQUESTS
