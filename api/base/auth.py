"""OpenAPI description of Strongbox's bearer authentication (registered by importing
``api.base.views``; the class is named by its dotted path, so this layer imports no app)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "organizations.authentication.BearerAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An organisation API token (`sbx_…`, acts in its organisation with its role) "
                "or a JWT from `POST /api/auth/token` (acts in the organisation named by the "
                "`X-Organization` header, or the user's only one)."
            ),
        }
