# The Celery app, loaded with Django so that @shared_task binds to it (gateway_project/celery.py).
from gateway_project.celery import app as celery_app

__all__ = ("celery_app",)
