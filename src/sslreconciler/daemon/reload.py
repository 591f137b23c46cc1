"""What SIGHUP re-reads before the reconcile it triggers: the settings (invalid ones keep the current
ones) and, when the socket path changed, the health server on the new path (unusable: the old one
keeps serving). The ssl dir, state dir, desired state and log settings follow in the loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sslreconciler.config.settings import Settings, load_settings
from sslreconciler.daemon.health import HealthServer, HealthState
from sslreconciler.daemon.logs import get_logger
from sslreconciler.model.errors import ConfigError


def reload_settings(
    current: Settings,
    config: Path | None,
    overrides: dict[str, Any],
    server: HealthServer | None,
    health: HealthState,
) -> tuple[Settings, HealthServer | None]:
    """The settings to go on with, and the health server serving them."""
    log = get_logger()
    try:
        settings = load_settings(config, overrides)
    except ConfigError as exc:
        log.error("reload: settings invalid, keeping the current ones", reason=str(exc))
        settings = current
    if settings.socket != current.socket and server is not None:
        # The new server first: if its path is unusable the old one keeps serving.
        moved = HealthServer(settings.socket, health)
        try:
            moved.start()
        except Exception as exc:
            log.error(
                "reload: cannot serve on the new socket, keeping the current one",
                socket=str(settings.socket),
                reason=str(exc),
            )
            settings = settings.model_copy(update={"socket": current.socket})
        else:
            server.stop()
            server = moved
    return settings, server
