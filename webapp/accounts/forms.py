from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from webapp.core.addresses import client_address
from webapp.core.errors import ServiceError
from webapp.core.signin_limits import SigninThrottled, SigninUnavailable, signin_attempt_start


class SignInForm(AuthenticationForm):
    """Django's sign-in form, each attempt counted (webapp/core/signin_limits.py) before the password
    is checked; `refusal` holds the reason when the attempt was not even checked."""

    refusal: ServiceError | None = None

    def clean(self):
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if username is None or not password:
            return super().clean()  # a missing field: no password is checked, so nothing to count
        try:
            attempt = signin_attempt_start(username=username, address=client_address(self.request))
        except (SigninThrottled, SigninUnavailable) as exc:
            self.refusal = exc
            raise ValidationError(exc.message, code="refused") from exc
        cleaned = super().clean()
        attempt.succeeded()
        return cleaned


class AdminSignInForm(SignInForm, AdminAuthenticationForm):
    """The admin's sign-in form (/admin/login/), counted against the same budgets: staff accounts are
    the ones most worth guessing. A right password of an account that is not staff counts as a failure."""
