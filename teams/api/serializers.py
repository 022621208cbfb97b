from __future__ import annotations

from rest_framework import serializers

from gateway_project.serializers import BudgetFieldsSerializer, DurationField, string_list
from teams.callbacks import CallbackConfigError, validate_metadata
from teams.models import TeamRole, UserRole
from teams.services import Member


class MetadataField(serializers.DictField):
    """Free-form metadata, except the keys the proxy reads: ``tags`` (strings) and
    ``spend_logs_metadata`` (an object)."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        tags = value.get("tags")
        if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            raise serializers.ValidationError("tags must be a list of strings.")
        if value.get("spend_logs_metadata") is not None and not isinstance(value["spend_logs_metadata"], dict):
            raise serializers.ValidationError("spend_logs_metadata must be an object.")
        try:
            validate_metadata(value)   # logging / callback_settings (docs/team-logging.md)
        except CallbackConfigError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


class MemberSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=TeamRole.choices)
    user_id = serializers.CharField(required=False, allow_null=True, max_length=150)
    user_email = serializers.EmailField(required=False, allow_null=True, max_length=254)

    def validate(self, attrs):
        if not attrs.get("user_id") and not attrs.get("user_email"):
            raise serializers.ValidationError("Pass user_id or user_email for each member.")
        return Member(role=attrs["role"], user_id=attrs.get("user_id"), user_email=attrs.get("user_email"))


class MembersField(serializers.Field):
    """One member object or a list of them; always validated to a list of ``Member``."""

    def to_internal_value(self, data):
        many = isinstance(data, list)
        if many and not data:
            raise serializers.ValidationError("Pass at least one member.")
        serializer = MemberSerializer(data=data, many=many)
        if not serializer.is_valid():
            raise serializers.ValidationError(serializer.errors)
        return list(serializer.validated_data) if many else [serializer.validated_data]


class TeamFieldsSerializer(BudgetFieldsSerializer):
    """Settings of a team, shared by /team/new and /team/update. Absent fields are left alone."""

    team_alias = serializers.CharField(required=False, allow_null=True, max_length=255)
    models = string_list(required=False)
    metadata = MetadataField(required=False)
    blocked = serializers.BooleanField(required=False)


class TeamNewSerializer(TeamFieldsSerializer):
    team_id = serializers.CharField(required=False, allow_null=True, max_length=128)
    members_with_roles = MemberSerializer(many=True, required=False)


class TeamUpdateSerializer(TeamFieldsSerializer):
    team_id = serializers.CharField(max_length=128)

    def validate(self, attrs):
        if "members_with_roles" in self.initial_data:
            raise serializers.ValidationError(
                {"members_with_roles": "Use /team/member_add and /team/member_delete to change members."})
        return attrs


class TeamDeleteSerializer(serializers.Serializer):
    team_ids = string_list(allow_empty=False)


class TeamIdQuerySerializer(serializers.Serializer):
    team_id = serializers.CharField()


class TeamListQuerySerializer(serializers.Serializer):
    user_id = serializers.CharField(required=False)


class TeamMemberAddSerializer(serializers.Serializer):
    team_id = serializers.CharField(max_length=128)
    member = MembersField()
    max_budget_in_team = serializers.FloatField(required=False, allow_null=True, min_value=0)


class TeamMemberDeleteSerializer(serializers.Serializer):
    team_id = serializers.CharField(max_length=128)
    user_id = serializers.CharField(required=False, allow_null=True, max_length=150)
    user_email = serializers.EmailField(required=False, allow_null=True, max_length=254)

    def validate(self, attrs):
        if not attrs.get("user_id") and not attrs.get("user_email"):
            raise serializers.ValidationError({"user_id": "Pass user_id or user_email."})
        return attrs


class UserNewSerializer(BudgetFieldsSerializer):
    user_id = serializers.CharField(required=False, allow_null=True, max_length=150)
    user_email = serializers.EmailField(required=False, allow_null=True, max_length=254)
    user_role = serializers.ChoiceField(choices=UserRole.choices, required=False, default=UserRole.INTERNAL_USER)
    teams = string_list(required=False)
    models = string_list(required=False)
    metadata = serializers.DictField(required=False)
    auto_create_key = serializers.BooleanField(required=False, default=True)
    key_alias = serializers.CharField(required=False, allow_null=True, max_length=255)
    duration = DurationField(required=False, allow_null=True)


class UserInfoQuerySerializer(serializers.Serializer):
    user_id = serializers.CharField(required=False)


class UserUpdateSerializer(BudgetFieldsSerializer):
    user_id = serializers.CharField(max_length=150)
    user_email = serializers.EmailField(required=False, allow_null=True, max_length=254)
    user_role = serializers.ChoiceField(choices=UserRole.choices, required=False)
    models = string_list(required=False)
    metadata = serializers.DictField(required=False)


class UserIdsSerializer(serializers.Serializer):
    user_ids = string_list(allow_empty=False)


class CustomerFieldsSerializer(BudgetFieldsSerializer):
    """Settings of a customer, shared by /customer/new and /customer/update. Absent fields are left alone."""

    alias = serializers.CharField(required=False, allow_null=True, max_length=255)
    blocked = serializers.BooleanField(required=False)
    allowed_model_region = serializers.ChoiceField(choices=["eu", "us"], required=False, allow_null=True)
    default_model = serializers.CharField(required=False, allow_null=True, max_length=255)
    models = string_list(required=False)


class CustomerSerializer(CustomerFieldsSerializer):
    user_id = serializers.CharField(max_length=255)


class CustomerInfoQuerySerializer(serializers.Serializer):
    end_user_id = serializers.CharField(max_length=255)


class CustomerListQuerySerializer(serializers.Serializer):
    page = serializers.IntegerField(required=False, default=1, min_value=1)
    size = serializers.IntegerField(required=False, default=100, min_value=1, max_value=1000)
