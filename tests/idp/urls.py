"""Routes of the test IdP: django-oauth-toolkit under /o/ (discovery at /o/.well-known/openid-configuration)
and a plain username/password login form, where the authorize endpoint sends a signed-out browser."""
from django.contrib.auth.views import LoginView
from django.urls import include, path

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("accounts/login/", LoginView.as_view(template_name="idp/login.html"), name="login"),
]
