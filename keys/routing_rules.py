"""The route-control and IP rules of the loaded config, compiled once per config."""
from __future__ import annotations

from gateway_project.config import GatewayConfig, get_config
from keys.policy import RouteRules, RouteSet, networks

_compiled: tuple[int, RouteRules] | None = None


def compile_rules(config: GatewayConfig) -> RouteRules:
    general = config.general_settings
    return RouteRules(public=RouteSet.of(general.public_routes), admin_only=RouteSet.of(general.admin_only_routes),
                      allowed=RouteSet.of(general.allowed_routes), allowed_ips=networks(general.allowed_ips),
                      trusted_proxies=networks(general.trusted_proxies),
                      use_x_forwarded_for=general.use_x_forwarded_for)


def current_rules() -> RouteRules:
    global _compiled
    config = get_config()
    if _compiled is None or _compiled[0] != id(config):
        _compiled = (id(config), compile_rules(config))
    return _compiled[1]
