"""/spend/logs and /spend/tags."""
from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import APIView

from gateway_project.serializers import validated
from keys.hashing import to_digest
from spend import reports
from spend.api.serializers import DateRangeSerializer, SpendLogsQuerySerializer
from teams.permissions import IsAuthenticatedCaller, IsProxyAdminOrViewer, caller_user_id, sees_everything


class SpendLogsApi(APIView):
    """Spend rows, newest first. Admins see every row; any other key only its own."""

    permission_classes = [IsAuthenticatedCaller]

    def get(self, request):
        query = validated(SpendLogsQuerySerializer, request.query_params)
        start, end = reports.day_bounds(query.get("start_date"), query.get("end_date"))
        api_key = to_digest(query["api_key"]) if query.get("api_key") else None
        user_id = query.get("user_id")
        caller = request.user
        if not sees_everything(caller):
            # A key sees its own rows; a signed-in non-admin user sees its user's rows.
            own_key, own_user = getattr(caller, "key_token", None), caller_user_id(caller)
            if own_key is None and own_user is None:
                return Response([])
            if (api_key and api_key != own_key) or (own_key is None and user_id and user_id != own_user):
                return Response([])
            api_key, user_id = own_key or api_key, user_id if own_key else own_user
        rows = reports.spend_logs(request_id=query.get("request_id"), api_key=api_key, user_id=user_id,
                                  start=start, end=end, limit=query["limit"])
        return Response([reports.spend_log_dict(row) for row in rows])


class SpendTagsApi(APIView):
    permission_classes = [IsProxyAdminOrViewer]

    def get(self, request):
        query = validated(DateRangeSerializer, request.query_params)
        start, end = reports.day_bounds(query.get("start_date"), query.get("end_date"))
        return Response(reports.spend_by_tag(start=start, end=end))
