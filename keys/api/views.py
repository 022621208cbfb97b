"""/key/* management endpoints: validate, call a service or selector, serialize."""
from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import APIView

from gateway_project.errors import BadRequestError, PermissionDeniedError
from gateway_project.serializers import validated
from keys import selectors, services
from keys.api import access
from keys.api.serializers import (KeyBlockSerializer, KeyDeleteSerializer, KeyGenerateSerializer,
                                  KeyListQuerySerializer, KeyRegenerateSerializer, KeyUpdateSerializer)
from keys.hashing import digest
from teams.permissions import IsAuthenticatedCaller, IsProxyAdminOrOwner, caller_user_id, sees_everything


class KeyGenerateApi(APIView):
    permission_classes = [IsProxyAdminOrOwner]

    def post(self, request):
        fields = access.check_new_key(request, validated(KeyGenerateSerializer, request.data))
        key, raw = services.key_generate(actor=caller_user_id(request.user), **fields)
        return Response({**selectors.key_info_dict(key), "key": raw})


class KeyUpdateApi(APIView):
    permission_classes = [IsProxyAdminOrOwner]

    def post(self, request):
        fields = validated(KeyUpdateSerializer, request.data)
        access.check_owner_change(request, services.key_get(key=fields["key"]), fields)
        named = fields.pop("key")
        key = services.key_update(actor=caller_user_id(request.user), key=named, **fields)
        return Response({**selectors.key_info_dict(key), "key": named})


class KeyDeleteApi(APIView):
    permission_classes = [IsProxyAdminOrOwner]

    def post(self, request):
        fields = validated(KeyDeleteSerializer, request.data)
        access.check_owner_delete(request, selectors.keys_named(keys=fields.get("keys"),
                                                                key_aliases=fields.get("key_aliases")))
        deleted = services.key_delete(keys=fields.get("keys"), key_aliases=fields.get("key_aliases"))
        return Response({"deleted_keys": deleted})


def _may_see(caller, key) -> bool:
    if sees_everything(caller):
        return True
    if getattr(caller, "key_token", None) == key.token:
        return True
    return caller_user_id(caller) is not None and key.user_id is not None and key.user.username == caller_user_id(caller)


class KeyInfoApi(APIView):
    """``/key/info?key=``; without ``key``, the calling key's own info."""

    permission_classes = [IsAuthenticatedCaller]

    def get(self, request):
        named = request.query_params.get("key") or request.auth
        if not named:
            raise PermissionDeniedError("Pass ?key= to name the key to show.")
        key = services.key_get(key=named)
        if not _may_see(request.user, key):
            raise PermissionDeniedError("You may only view your own keys.")
        return Response({"key": named, "info": selectors.key_info_dict(key)})


class KeyListApi(APIView):
    permission_classes = [IsAuthenticatedCaller]

    def get(self, request):
        query = validated(KeyListQuerySerializer, request.query_params)
        caller = request.user
        filters = {name: query.get(name) for name in ("user_id", "team_id", "key_alias", "key_hash")}
        if not sees_everything(caller):
            # Non-admins list their own user's keys, or only the calling key when it has no user.
            if caller_user_id(caller):
                filters["user_id"] = caller_user_id(caller)
            else:
                filters["key_hash"] = digest(request.auth)
        rows, total, pages = selectors.paginate(selectors.key_list(**filters), page=query["page"], size=query["size"])
        keys = [selectors.key_info_dict(k) for k in rows] if query["return_full_object"] else [k.token for k in rows]
        return Response({"keys": keys, "total_count": total, "current_page": query["page"], "total_pages": pages})


class KeyBlockApi(APIView):
    """``/key/block``: proxy admins, or an internal user on its own key."""

    permission_classes = [IsProxyAdminOrOwner]

    def post(self, request):
        named = validated(KeyBlockSerializer, request.data)["key"]
        access.check_owner_change(request, services.key_get(key=named), {})
        key = services.key_block(actor=caller_user_id(request.user), key=named)
        return Response({**selectors.key_info_dict(key), "key": named})


class KeyUnblockApi(APIView):
    """``/key/unblock``: proxy admins only; nothing records who blocked a key."""

    def post(self, request):
        named = validated(KeyBlockSerializer, request.data)["key"]
        key = services.key_unblock(actor=caller_user_id(request.user), key=named)
        return Response({**selectors.key_info_dict(key), "key": named})


class KeyRegenerateApi(APIView):
    """``/key/regenerate`` (key in the body or ``?key=``) and ``/key/{key}/regenerate``."""

    permission_classes = [IsProxyAdminOrOwner]

    def post(self, request, key: str | None = None):
        fields = validated(KeyRegenerateSerializer, request.data)
        fields.pop("grace_period", None)
        body_key = fields.pop("key", None)
        named = key or request.query_params.get("key") or body_key
        if not named:
            raise BadRequestError("Pass the key to regenerate: /key/{key}/regenerate, ?key= or \"key\" in the body.",
                                  param="key")
        access.check_owner_change(request, services.key_get(key=named), fields)
        record, raw = services.key_regenerate(actor=caller_user_id(request.user), key=named, **fields)
        return Response({**selectors.key_info_dict(record), "key": raw})
