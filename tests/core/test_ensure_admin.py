"""manage.py ensure_admin: the first admin, created once by bin/run and compose's setup service."""

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db

User = get_user_model()


def ensure_admin(*args) -> str:
    out = StringIO()
    call_command("ensure_admin", *args, stdout=out)
    return out.getvalue()


@pytest.fixture(autouse=True)
def no_admin_settings(monkeypatch):
    monkeypatch.delenv("TL_ADMIN_USERNAME", raising=False)
    monkeypatch.delenv("TL_ADMIN_PASSWORD", raising=False)


def test_it_creates_admin_with_a_generated_password_it_prints_once():
    first = ensure_admin()
    password = re.search(r"First admin user created: username 'admin', password (\S+)\n", first)[1]
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password(password)
    assert len(password) >= 16

    assert ensure_admin() == ""
    assert ensure_admin("-v", "2") == "A superuser exists: no admin created.\n"
    assert User.objects.count() == 1 and User.objects.get().check_password(password)


def test_it_honours_TL_ADMIN_USERNAME_and_TL_ADMIN_PASSWORD_and_never_prints_a_given_password(monkeypatch):
    monkeypatch.setenv("TL_ADMIN_USERNAME", "root-of-all")
    monkeypatch.setenv("TL_ADMIN_PASSWORD", "given-admin-pw-1")
    out = ensure_admin()
    assert "username 'root-of-all', password (from TL_ADMIN_PASSWORD)" in out
    assert "given-admin-pw-1" not in out
    assert User.objects.get(username="root-of-all").check_password("given-admin-pw-1")


def test_an_empty_TL_ADMIN_PASSWORD_counts_as_unset(monkeypatch):
    # compose passes ${TL_ADMIN_PASSWORD:-}: an empty value when .env has none.
    monkeypatch.setenv("TL_ADMIN_PASSWORD", "")
    out = ensure_admin()
    assert "TL_ADMIN_PASSWORD" not in out
    password = re.search(r"password (\S+)\n", out)[1]
    assert User.objects.get(username="admin").check_password(password)


def test_it_leaves_an_existing_superuser_alone_whatever_its_name(monkeypatch):
    User.objects.create_superuser("owner", "", "owner-pw-1")
    monkeypatch.setenv("TL_ADMIN_PASSWORD", "other-pw-1")
    assert ensure_admin() == ""
    assert list(User.objects.values_list("username", flat=True)) == ["owner"]
    assert User.objects.get().check_password("owner-pw-1")


def test_it_refuses_a_name_taken_by_a_user_who_is_not_a_superuser(alice, monkeypatch):
    monkeypatch.setenv("TL_ADMIN_USERNAME", "alice")
    with pytest.raises(CommandError, match="A user named 'alice' exists but is not a superuser"):
        ensure_admin()
    assert not User.objects.filter(is_superuser=True).exists()
