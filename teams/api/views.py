"""/team/* and /user/* management endpoints: validate, call a service or selector, serialize."""
from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import APIView

from gateway_project.errors import BadRequestError, PermissionDeniedError
from gateway_project.serializers import validated
from keys.selectors import key_info_dict, paginate
from teams import selectors, services
from teams.api.serializers import (CustomerInfoQuerySerializer, CustomerListQuerySerializer, CustomerSerializer,
                                   TeamDeleteSerializer, TeamIdQuerySerializer, TeamListQuerySerializer,
                                   TeamMemberAddSerializer, TeamMemberDeleteSerializer, TeamNewSerializer,
                                   TeamUpdateSerializer, UserIdsSerializer, UserInfoQuerySerializer,
                                   UserNewSerializer, UserUpdateSerializer)
from teams.models import UserRole
from teams.permissions import (IsAuthenticatedCaller, IsProxyAdminOrOwner, IsProxyAdminOrViewer, caller_user_id,
                               check_team_admin, check_team_reader, route_refused, sees_everything)


def _creator_id(caller) -> str | None:
    """The calling user, who joins a team they create; None for the master key or a key without a user."""
    return None if getattr(caller, "is_master", False) else caller_user_id(caller)


class TeamNewApi(APIView):
    def post(self, request):
        fields = validated(TeamNewSerializer, request.data)
        team = services.team_create(creator_id=_creator_id(request.user), **fields)
        return Response(selectors.team_dict(team))


class TeamUpdateApi(APIView):
    permission_classes = [IsProxyAdminOrOwner]

    def post(self, request):
        fields = validated(TeamUpdateSerializer, request.data)
        check_team_admin(request, fields["team_id"], fields=fields)
        team = services.team_update(**fields)
        return Response(selectors.team_dict(team))


class TeamDeleteApi(APIView):
    def post(self, request):
        fields = validated(TeamDeleteSerializer, request.data)
        return Response({"deleted_teams": services.team_delete(team_ids=fields["team_ids"])})


class TeamInfoApi(APIView):
    permission_classes = [IsAuthenticatedCaller]

    def get(self, request):
        query = validated(TeamIdQuerySerializer, request.query_params)
        check_team_reader(request, query["team_id"])
        return Response(selectors.team_info(team_id=query["team_id"]))


def _check_lists_own_teams(request, user_id: str | None) -> None:
    """Listing every team is for admins and viewers; anyone else names its own ``user_id``."""
    caller = request.user
    if sees_everything(caller):
        return
    if user_id is None:
        raise route_refused(request, caller)
    if user_id != caller_user_id(caller):
        raise PermissionDeniedError("You may only list your own teams.")


class TeamListApi(APIView):
    permission_classes = [IsAuthenticatedCaller]

    def get(self, request):
        query = validated(TeamListQuerySerializer, request.query_params)
        _check_lists_own_teams(request, query.get("user_id"))
        return Response([selectors.team_dict(t) for t in selectors.team_list(user_id=query.get("user_id"))])


class TeamMemberAddApi(APIView):
    permission_classes = [IsProxyAdminOrOwner]

    def post(self, request):
        fields = validated(TeamMemberAddSerializer, request.data)
        check_team_admin(request, fields["team_id"])
        team, memberships = services.team_member_add(team_id=fields["team_id"], members=fields["member"],
                                                     max_budget_in_team=fields.get("max_budget_in_team"))
        return Response({
            **selectors.team_dict(team),
            "updated_users": [selectors.user_dict(m.user) for m in memberships],
            "updated_team_memberships": [selectors.membership_dict(m) for m in memberships],
        })


class TeamMemberDeleteApi(APIView):
    permission_classes = [IsProxyAdminOrOwner]

    def post(self, request):
        fields = validated(TeamMemberDeleteSerializer, request.data)
        check_team_admin(request, fields["team_id"])
        team = services.team_member_delete(team_id=fields["team_id"], user_id=fields.get("user_id"),
                                           user_email=fields.get("user_email"))
        return Response(selectors.team_dict(team))


# NewUserResponse without a key: the key's identifying fields are present and null.
_NO_KEY = {"key": None, "key_name": None, "key_alias": None, "token_id": None, "expires": None}


class UserNewApi(APIView):
    def post(self, request):
        fields = validated(UserNewSerializer, request.data)
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
        query = validated(UserInfoQuerySerializer, request.query_params)
        caller = request.user
        own = None if getattr(caller, "is_master", False) else caller_user_id(caller)
        user_id = query.get("user_id") or own
        if user_id is None:
            raise BadRequestError("Pass ?user_id= to name the user to show; this key belongs to no user.",
                                  param="user_id")
        if user_id != own and not _sees_every_user(caller):
            raise PermissionDeniedError("You may only view your own user.")
        return Response(selectors.user_info(user_id=user_id))


class TeamBlockApi(APIView):
    def post(self, request):
        team_id = validated(TeamIdQuerySerializer, request.data)["team_id"]
        return Response(selectors.team_dict(services.team_block(team_id=team_id)))


class TeamUnblockApi(APIView):
    def post(self, request):
        team_id = validated(TeamIdQuerySerializer, request.data)["team_id"]
        return Response(selectors.team_dict(services.team_unblock(team_id=team_id)))


class UserUpdateApi(APIView):
    def post(self, request):
        fields = validated(UserUpdateSerializer, request.data)
        return Response(selectors.user_dict(services.user_update(**fields)))


class UserDeleteApi(APIView):
    def post(self, request):
        user_ids = validated(UserIdsSerializer, request.data)["user_ids"]
        return Response({"deleted_users": services.user_delete(user_ids=user_ids)})


class CustomerNewApi(APIView):
    """``/customer/new``, also ``/end_user/new``."""

    def post(self, request):
        fields = validated(CustomerSerializer, request.data)
        return Response(selectors.customer_dict(services.customer_create(**fields)))


class CustomerInfoApi(APIView):
    permission_classes = [IsProxyAdminOrViewer]

    def get(self, request):
        user_id = validated(CustomerInfoQuerySerializer, request.query_params)["end_user_id"]
        return Response(selectors.customer_dict(selectors.customer_get(user_id=user_id, param="end_user_id")))


class CustomerListApi(APIView):
    permission_classes = [IsProxyAdminOrViewer]

    def get(self, request):
        query = validated(CustomerListQuerySerializer, request.query_params)
        rows, _, _ = paginate(selectors.customer_list(), page=query["page"], size=query["size"])
        return Response([selectors.customer_dict(c) for c in rows])


class CustomerUpdateApi(APIView):
    def post(self, request):
        fields = validated(CustomerSerializer, request.data)
        return Response(selectors.customer_dict(services.customer_update(**fields)))


class CustomerDeleteApi(APIView):
    def post(self, request):
        user_ids = validated(UserIdsSerializer, request.data)["user_ids"]
        return Response({"deleted_customers": services.customer_delete(user_ids=user_ids)})


class CustomerBlockApi(APIView):
    def post(self, request):
        user_ids = validated(UserIdsSerializer, request.data)["user_ids"]
        return Response({"blocked_users": [selectors.customer_dict(c)
                                           for c in services.customer_block(user_ids=user_ids)]})


class CustomerUnblockApi(APIView):
    """``/customer/unblock``, also ``/user/unblock`` (the seed's spelling)."""

    def post(self, request):
        user_ids = validated(UserIdsSerializer, request.data)["user_ids"]
        return Response({"unblocked_users": [selectors.customer_dict(c)
                                             for c in services.customer_unblock(user_ids=user_ids)]})
