from api.base.routes import routes
from drills.api.views import DrillViewSet


def _view(actions):
    return lambda **kw: DrillViewSet.as_view(actions, **kw)


urlpatterns = [
    *routes(
        "api/databases/<str:databaseId>/drills",
        _view({"get": "list_page", "post": "create"}),
        "database-drills",
    ),
    *routes(
        "api/databases/<str:databaseId>/drill-policy",
        _view({"get": "policy", "put": "policy_update"}),
        "database-drill-policy",
    ),
]
