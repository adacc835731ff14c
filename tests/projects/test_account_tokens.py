"""The account page's API tokens, and the migration that hashed DRF's plain-text ones."""

import hashlib
import importlib
from datetime import datetime

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from webapp.accounts.models import ApiToken
from webapp.accounts.services import api_token_create

pytestmark = pytest.mark.django_db


def _key_in(page: str) -> str:
    start = page.index('<code id="new-api-token">') + len('<code id="new-api-token">')
    return page[start : page.index("</code>", start)]


def _apps_at(node):
    """The models as the migrations left them at `node` (ApiToken was the projects app's until 0005)."""
    return MigrationExecutor(connection).loader.project_state(node).apps


def _authenticates(key: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/projects/").status_code == 200


def test_it_shows_a_new_key_once_and_afterwards_only_its_prefix(client, alice):
    client.force_login(alice)
    assert "You have no API token yet." in client.get("/accounts/me/").content.decode()
    created = client.post("/accounts/me/tokens/")
    assert created.status_code == 201
    key = _key_in(created.content.decode())
    assert _authenticates(key)
    later = client.get("/accounts/me/").content.decode()
    assert key not in later
    assert f"<code>{key[:8]}…</code>" in later
    token = ApiToken.objects.get(user=alice)
    assert token.created_at.strftime("%Y-%m-%d %H:%M") in later
    assert token.digest == hashlib.sha256(key.encode()).hexdigest()


def test_it_revokes_a_token(client, alice):
    client.force_login(alice)
    key = _key_in(client.post("/accounts/me/tokens/").content.decode())
    token = ApiToken.objects.get(user=alice)
    response = client.post(f"/accounts/me/tokens/{token.pk}/revoke/", follow=True)
    assert "The API token was revoked" in response.content.decode()
    assert not _authenticates(key)


def test_it_does_not_revoke_another_users_token(client, alice, bob):
    token, key = api_token_create(user=bob)
    client.force_login(alice)
    response = client.post(f"/accounts/me/tokens/{token.pk}/revoke/")
    assert response.status_code == 404
    assert _authenticates(key)


def test_token_pages_need_a_signed_in_user_and_a_post(client, alice):
    assert client.post("/accounts/me/tokens/").status_code == 302
    assert not ApiToken.objects.exists()
    client.force_login(alice)
    assert client.get("/accounts/me/tokens/").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_the_migration_hashes_drf_tokens_and_drops_their_plain_text(alice):
    """A database that ran DRF's authtoken: its keys keep working, and the plain keys leave the database."""
    migration = importlib.import_module("webapp.projects.migrations.0003_api_token")
    old_key = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"
    created_type = "timestamp with time zone" if connection.vendor == "postgresql" else "datetime"  # as DRF's made it
    with connection.cursor() as cursor:
        cursor.execute(
            f'CREATE TABLE authtoken_token ("key" varchar(40) PRIMARY KEY, created {created_type} NOT NULL, '
            "user_id integer NOT NULL)"
        )
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s, %s)", [old_key, "2025-03-04 05:06:07", alice.pk])
        cursor.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES ('authtoken', '0001_initial', %s)",
            [datetime.now()],
        )
    ContentType.objects.create(app_label="authtoken", model="token")
    with connection.schema_editor() as editor:
        migration.hash_drf_tokens(_apps_at(("projects", "0003_api_token")), editor)
    token = ApiToken.objects.get(user=alice)
    assert token.digest == hashlib.sha256(old_key.encode()).hexdigest()
    assert token.prefix == old_key[:8]
    assert token.created_at.isoformat() == "2025-03-04T05:06:07+00:00"
    assert _authenticates(old_key)
    assert "authtoken_token" not in connection.introspection.table_names()
    assert not ContentType.objects.filter(app_label="authtoken").exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM django_migrations WHERE app = 'authtoken'")
        assert cursor.fetchone()[0] == 0


def test_the_migration_does_nothing_on_a_database_without_drf_tokens(alice):
    migration = importlib.import_module("webapp.projects.migrations.0003_api_token")
    migration.hash_drf_tokens(_apps_at(("projects", "0003_api_token")), connection.schema_editor(atomic=False))
    assert not ApiToken.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_token_issued_before_the_move_to_the_accounts_app_still_authenticates(alice):
    """ApiToken moved from projects to accounts with its table: a key issued before still signs in,
    and a permission granted on the model is kept (its content type is relabelled, not replaced)."""
    from django.contrib.auth.models import Permission

    alice.user_permissions.add(Permission.objects.get(content_type__app_label="accounts", codename="view_apitoken"))
    key = "issued-before-the-move-0123456789abcdefghijklmn"
    executor = MigrationExecutor(connection)
    try:
        before = executor.migrate([("accounts", None)])  # projects/0005 is unapplied along with it
        ContentType.objects.clear_cache()
        assert ContentType.objects.filter(app_label="projects", model="apitoken").exists()
        OldApiToken = before.apps.get_model("projects", "ApiToken")
        OldApiToken.objects.create(user_id=alice.pk, digest=hashlib.sha256(key.encode()).hexdigest(), prefix=key[:8])
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
        ContentType.objects.clear_cache()
    assert ApiToken.objects.get(user=alice).prefix == key[:8]
    assert _authenticates(key)
    alice = type(alice).objects.get(pk=alice.pk)  # a fresh permission cache
    assert alice.has_perm("accounts.view_apitoken")
    assert not ContentType.objects.filter(app_label="projects", model="apitoken").exists()
