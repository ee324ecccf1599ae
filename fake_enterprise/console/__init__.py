"""The issuer's web console (`GET /console`): its state at a glance and its admin actions, behind the
admin secret."""

from fake_enterprise.console.routes import CONSOLE_PATH, Console

__all__ = ["CONSOLE_PATH", "Console"]
