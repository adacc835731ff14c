from django.urls import reverse

from tests.experiments.factories import make_dataset, make_project


def _preview(client, project, **params):
    return client.get(reverse("experiments:augmentation_preview", args=[project.pk]), params)


def test_it_previews_augmented_training_images_of_each_class(client, alice):
    project = make_project(alice)
    dataset = make_dataset(project)
    client.force_login(alice)
    page = _preview(
        client, project, dataset=dataset.pk, image_height=32, image_width=32, horizontal_flip="on", rotation_range=20
    ).content.decode()
    assert page.count('class="aug-row"') == 2  # one row per class
    assert page.count("data:image/png;base64,") == 2 * 5  # the original and four draws
    assert "original training image 1" in page


def test_it_names_a_bad_option_and_a_missing_dataset(client, alice):
    project = make_project(alice)
    dataset = make_dataset(project)
    client.force_login(alice)
    page = _preview(client, project, dataset=dataset.pk, rotation_range=999).content.decode()
    assert 'role="alert"' in page and "augmentation.rotation_range" in page
    page = _preview(client, project, rotation_range=10).content.decode()
    assert "Pick a ready dataset" in page


def test_another_users_project_is_not_found(client, alice, bob):
    project = make_project(alice)
    client.force_login(bob)
    assert _preview(client, project).status_code == 404


def test_the_form_offers_the_preview_button(client, alice):
    project = make_project(alice)
    make_dataset(project)
    client.force_login(alice)
    page = client.get(reverse("experiments:create", args=[project.pk])).content.decode()
    assert reverse("experiments:augmentation_preview", args=[project.pk]) in page and 'id="aug-preview"' in page
