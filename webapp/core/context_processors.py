from django.conf import settings


def site(request):
    return {"signup_enabled": settings.TL_SIGNUP_ENABLED}
