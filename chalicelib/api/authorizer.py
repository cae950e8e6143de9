"""The API Gateway authorizer: an API key in, a name and a role out.

On AWS it runs as its own Lambda and API Gateway caches its answer per key for
60 s; locally chalice runs it before every route. It only authenticates: roles
are enforced by the routes (``http.endpoint``), so one cached answer serves
every route. An unknown key is denied; the gateway turns that into our 401
JSON (see ``gateway_responses``).
"""

from __future__ import annotations

from chalice import AuthResponse, Blueprint
from chalice.app import AuthRequest

from .. import wiring
from .http import bearer_token

authorizer_bp = Blueprint(__name__)


@authorizer_bp.authorizer(ttl_seconds=60, name="api_key_authorizer")
def api_key_authorizer(auth_request: AuthRequest) -> AuthResponse:
    actor = wiring.access().authenticate(bearer_token(auth_request.token))
    if actor is None:
        return AuthResponse(routes=[], principal_id="anonymous")
    return AuthResponse(routes=["*"], principal_id=actor.name,
                        context={"key_name": actor.name, "role": actor.role})
