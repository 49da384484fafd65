from django.apps import AppConfig


class DjangoTestConfig(AppConfig):
    name = "djangotest"

    def ready(self) -> None:
        from djangotest import signals  # noqa: F401  (connects the receivers)
