"""The claims the test IdP puts in ID tokens and userinfo answers."""
from __future__ import annotations

from oauth2_provider.oauth2_validators import OAuth2Validator


class GroupsClaimValidator(OAuth2Validator):
    """Adds the user's name, email and Django group names (claim ``groups``, released with the
    ``profile`` scope, as Keycloak's group-membership mapper would) to the standard ``sub``."""

    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "groups": "profile"}

    def get_additional_claims(self):
        # The request-agnostic form (callables): discovery then lists these claims as supported.
        return {
            "preferred_username": lambda request: request.user.username,
            "given_name": lambda request: request.user.first_name,
            "family_name": lambda request: request.user.last_name,
            "email": lambda request: request.user.email,
            "email_verified": lambda request: bool(request.user.email),
            "groups": lambda request: sorted(request.user.groups.values_list("name", flat=True)),
        }
