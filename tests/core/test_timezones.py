"""Times are shown in the reader's zone, named by their browser's `tz` cookie; UTC without a usable one."""

from datetime import UTC, datetime

from django.urls import reverse

from webapp.projects.models import Project


def _projects_page(client, alice, cookie=None):
    project = Project.objects.create(owner=alice, name="Shapes")
    Project.objects.filter(pk=project.pk).update(created_at=datetime(2026, 11, 29, 18, 4, tzinfo=UTC))
    client.force_login(alice)
    if cookie is not None:
        client.cookies["tz"] = cookie
    return client.get(reverse("projects:list")).content.decode()


def test_it_shows_times_in_the_zone_the_browser_named(client, alice):
    # static/js/timezone.js writes the name URL-encoded.
    assert "2026-11-29 19:04 CET" in _projects_page(client, alice, "Europe%2FParis")


def test_it_shows_utc_and_says_so_without_a_cookie(client, alice):
    assert "2026-11-29 18:04 UTC" in _projects_page(client, alice)


def test_it_falls_back_to_utc_for_a_zone_that_does_not_exist_or_is_a_path(client, alice):
    for bad in ("Mars%2FOlympus", "..%2F..%2Fetc%2Fpasswd", "zone1970.tab", "x" * 200):
        Project.objects.all().delete()
        assert "2026-11-29 18:04 UTC" in _projects_page(client, alice, bad), bad
