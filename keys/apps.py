from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "Virtual keys"

    def ready(self) -> None:
        from keys import cache  # noqa: F401  (connects cache invalidation to model writes)
        from gateway_project.audit.registry import register
        from keys.models import VirtualKey
        from keys.selectors import key_info_dict

        # The digest (token, token_id) names the key in the audit trail (object_id) and is never one of
        # its recorded values; updated_by is what the record's changed_by says.
        register(VirtualKey, table="LiteLLM_VerificationToken", values=key_info_dict,
                 exclude=("token", "token_id", "updated_by"))
