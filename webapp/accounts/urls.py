from django.urls import path

from . import views

urlpatterns = [
    path("accounts/signup/", views.signup, name="signup"),
    # Before django.contrib.auth.urls (included after this file), so that sign-in is limited.
    path("accounts/login/", views.SignInView.as_view(), name="login"),
    # Before admin.site.urls: the admin's sign-in is limited the same way.
    path("admin/login/", views.admin_sign_in, name="admin-login"),
    path("accounts/me/", views.account, name="account"),
    path("accounts/me/tokens/", views.account_token_create, name="account-token-create"),
    path("accounts/me/tokens/<int:token_id>/revoke/", views.account_token_revoke, name="account-token-revoke"),
]
