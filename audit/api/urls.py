from api.base.routes import routes
from audit.api.views import AuditEventViewSet

urlpatterns = [
    *routes(
        "api/audit-events",
        lambda **kw: AuditEventViewSet.as_view({"get": "list_page"}, **kw),
        "api-audit-events",
    ),
]
