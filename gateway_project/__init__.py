# The Celery app (gateway_project/celery.py) loads on first use, not with Django: a gateway without Redis
# never needs Celery (about 5 MB per process; docs/performance.md, "Memory"). ``celery -A gateway_project``
# finds it in gateway_project.celery; code that enqueues imports that module before its tasks, so that
# @shared_task binds to it.
__all__ = ("celery_app",)


def __getattr__(name: str):
    if name == "celery_app":
        from gateway_project.celery import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
