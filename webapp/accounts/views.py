"""Sign-up, sign-in and the account page with its API tokens: parse input, call one service, render."""

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.views import LoginView
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from webapp.core.signin_limits import SigninThrottled
from webapp.core.xhr import login_required_for_scripts, wants_json

from . import selectors, services
from .forms import SignInForm


def signup(request):
    if not settings.TL_SIGNUP_ENABLED:
        raise Http404("Sign-up is disabled on this server.")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        return redirect("projects:list")
    return render(request, "registration/signup.html", {"form": form})


class SignInView(LoginView):
    """Django's sign-in page; a refused attempt (too many failures, or no attempt counter) answers
    the form with its reason and status 429 or 503."""

    form_class = SignInForm

    def form_invalid(self, form):
        return _refusal_status(super().form_invalid(form), form.refusal)


def _refusal_status(response, refusal):
    """A refused attempt's status (429 with Retry-After, or 503) on the page that shows its reason."""
    if refusal is not None:
        response.status_code = refusal.status_code
        if isinstance(refusal, SigninThrottled):
            response["Retry-After"] = str(refusal.retry_after)
    return response


def admin_sign_in(request):
    """/admin/login/: the admin's own page with AdminSignInForm, so that guesses there count against the
    same per-account and per-address budgets as the sign-in page and the token endpoint (admin.site's
    login_form is AdminSignInForm: accounts/admin.py); a refusal is answered 429 or 503 here."""
    response = admin.site.login(request)
    form = (getattr(response, "context_data", None) or {}).get("form")
    return _refusal_status(response, getattr(form, "refusal", None))


def _account_page(request, *, new_key=None, status=200):
    context = {
        "tokens": selectors.api_tokens_of(request.user),
        "new_key": new_key,
        "max_tokens": services.MAX_TOKENS_PER_USER,
    }
    return render(request, "registration/account.html", context, status=status)


@login_required
def account(request):
    return _account_page(request)


@login_required_for_scripts
@require_POST
def account_token_create(request):
    # The key is rendered into this response only, never stored or redirected with: it cannot be shown again.
    token, key = services.api_token_create(user=request.user)
    if wants_json(request):  # the project page's "Create a token and fill it in"
        message = (
            f"A new token (starting {token.prefix}) is filled in below. It is shown only here: "
            "copy the commands now; your account page lists and revokes tokens."
        )
        return JsonResponse({"key": key, "prefix": token.prefix, "message": message}, status=201)
    return _account_page(request, new_key=key, status=201)


@login_required
@require_POST
def account_token_revoke(request, token_id):
    if not services.api_token_revoke(user=request.user, token_id=token_id):
        raise Http404(f"You have no API token with id {token_id}.")
    messages.success(request, "The API token was revoked; requests that send it are refused from now on.")
    return redirect("account")
