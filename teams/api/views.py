"""/team/* and /user/* management endpoints: validate, call a service or selector, serialize."""
from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import APIView

from gateway_project.errors import BadRequestError, PermissionDeniedError
from keys.selectors import key_info_dict
from teams import selectors, services
from teams.api.serializers import (TeamDeleteSerializer, TeamIdQuerySerializer, TeamListQuerySerializer,
                                   TeamMemberAddSerializer, TeamMemberDeleteSerializer, TeamNewSerializer,
                                   TeamUpdateSerializer, UserInfoQuerySerializer, UserNewSerializer)
from teams.models import UserRole
from teams.permissions import IsAuthenticatedCaller, caller_user_id


def _validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _creator_id(caller) -> str | None:
    """The calling user, who joins a team they create; None for the master key or a key without a user."""
    return None if getattr(caller, "is_master", False) else caller_user_id(caller)


class TeamNewApi(APIView):
    def post(self, request):
        fields = _validated(TeamNewSerializer, request.data)
        team = services.team_create(creator_id=_creator_id(request.user), **fields)
        return Response(selectors.team_dict(team))


class TeamUpdateApi(APIView):
    def post(self, request):
        fields = _validated(TeamUpdateSerializer, request.data)
        team = services.team_update(**fields)
        return Response(selectors.team_dict(team))


class TeamDeleteApi(APIView):
    def post(self, request):
        fields = _validated(TeamDeleteSerializer, request.data)
        return Response({"deleted_teams": services.team_delete(team_ids=fields["team_ids"])})


class TeamInfoApi(APIView):
    def get(self, request):
        query = _validated(TeamIdQuerySerializer, request.query_params)
        return Response(selectors.team_info(team_id=query["team_id"]))


class TeamListApi(APIView):
    def get(self, request):
        query = _validated(TeamListQuerySerializer, request.query_params)
        return Response([selectors.team_dict(t) for t in selectors.team_list(user_id=query.get("user_id"))])


class TeamMemberAddApi(APIView):
    def post(self, request):
        fields = _validated(TeamMemberAddSerializer, request.data)
        team, memberships = services.team_member_add(team_id=fields["team_id"], members=fields["member"],
                                                     max_budget_in_team=fields.get("max_budget_in_team"))
        return Response({
            **selectors.team_dict(team),
            "updated_users": [selectors.user_dict(m.user) for m in memberships],
            "updated_team_memberships": [selectors.membership_dict(m) for m in memberships],
        })


class TeamMemberDeleteApi(APIView):
    def post(self, request):
        fields = _validated(TeamMemberDeleteSerializer, request.data)
        team = services.team_member_delete(team_id=fields["team_id"], user_id=fields.get("user_id"),
                                           user_email=fields.get("user_email"))
        return Response(selectors.team_dict(team))


# NewUserResponse without a key: the key's identifying fields are present and null.
_NO_KEY = {"key": None, "key_name": None, "key_alias": None, "token_id": None, "expires": None}


class UserNewApi(APIView):
    def post(self, request):
        fields = _validated(UserNewSerializer, request.data)
        user, key, raw = services.user_create(actor=caller_user_id(request.user), **fields)
        key_fields = {**key_info_dict(key), "key": raw} if key else _NO_KEY
        # The user's budget, limits, models and metadata win over the key's: they are what was asked for.
        return Response({**key_fields, **selectors.user_dict(user)})


def _sees_every_user(caller) -> bool:
    return getattr(caller, "is_proxy_admin", False) or getattr(caller, "role", None) == UserRole.PROXY_ADMIN_VIEWER


class UserInfoApi(APIView):
    """``/user/info?user_id=``; without ``user_id``, the calling key's own user."""

    permission_classes = [IsAuthenticatedCaller]

    def get(self, request):
        query = _validated(UserInfoQuerySerializer, request.query_params)
        caller = request.user
        own = None if getattr(caller, "is_master", False) else caller_user_id(caller)
        user_id = query.get("user_id") or own
        if user_id is None:
            raise BadRequestError("Pass ?user_id= to name the user to show; this key belongs to no user.",
                                  param="user_id")
        if user_id != own and not _sees_every_user(caller):
            raise PermissionDeniedError("You may only view your own user.")
        return Response(selectors.user_info(user_id=user_id))
