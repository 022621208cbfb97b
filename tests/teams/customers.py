"""The customer shape and a factory shared by the /customer/* tests."""
from teams.models import Customer
from teams.services import customer_create

CUSTOMER_FIELDS = {
    "user_id", "alias", "blocked", "spend", "allowed_model_region", "default_model", "models", "max_budget",
    "budget_duration", "litellm_budget_table", "created_at", "updated_at",
}


def customer(user_id: str, **fields) -> Customer:
    return customer_create(user_id=user_id, **fields)
