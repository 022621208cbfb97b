"""Team-based logging endpoints: ``POST|GET /team/{team_id}/callback``, ``POST /team/{team_id}/disable_logging``.

Proxy admins and the team's own admins may use them; ``GET`` also answers proxy admin viewers.
Secrets in ``callback_vars`` are never shown in full.
"""
from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import APIView

from gateway_project.errors import BadRequestError
from teams import selectors, services
from teams.callbacks import CallbackConfigError, CallbackTarget, callbacks_view, validated_callback
from teams.permissions import IsAuthenticatedCaller, IsProxyAdminOrOwner, check_team_admin, sees_everything

MAX_TEAM_ID = 128


def _team_id(team_id: str) -> str:
    if len(team_id) > MAX_TEAM_ID or "\x00" in team_id:
        raise BadRequestError(f"team_id must be at most {MAX_TEAM_ID} characters.", param="team_id")
    return team_id


def _callback_from(data) -> CallbackTarget:
    if not isinstance(data, dict):
        raise BadRequestError("The request body must be a JSON object with callback_name, callback_type and "
                              "callback_vars.", param="request_body")
    unknown = set(data) - {"callback_name", "callback_type", "callback_vars"}
    if unknown:
        raise BadRequestError(f"Unknown fields: {', '.join(sorted(unknown))}", param=sorted(unknown)[0])
    try:
        return validated_callback(data.get("callback_name"), data.get("callback_type"),
                                  data.get("callback_vars", {}))
    except CallbackConfigError as exc:
        raise BadRequestError(str(exc), param=exc.param) from None


class TeamCallbackApi(APIView):
    permission_classes = [IsAuthenticatedCaller]

    def post(self, request, team_id: str):
        team_id = _team_id(team_id)
        check_team_admin(request, team_id)   # before validating: a stranger learns nothing of the team
        target = _callback_from(request.data)
        team = services.team_callback_add(team_id=team_id, target=target)
        return Response({"status": "success", "data": selectors.team_dict(selectors.team_get(team_id=team.team_id))})

    def get(self, request, team_id: str):
        team_id = _team_id(team_id)
        if not sees_everything(request.user):
            check_team_admin(request, team_id)
        team = selectors.team_get(team_id=team_id)
        return Response({"status": "success", "data": callbacks_view(team.team_id, team.metadata)})


class TeamDisableLoggingApi(APIView):
    permission_classes = [IsProxyAdminOrOwner]

    def post(self, request, team_id: str):
        team_id = _team_id(team_id)
        check_team_admin(request, team_id)
        team = services.team_logging_disable(team_id=team_id)
        return Response({"status": "success", "message": f"Logging disabled for team {team.team_id}",
                         "data": {"team_id": team.team_id, "success_callbacks": [], "failure_callbacks": []}})

