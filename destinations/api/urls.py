from api.base.routes import routes
from destinations.api.views import DestinationViewSet


def _view(actions):
    return lambda **kw: DestinationViewSet.as_view(actions, **kw)


urlpatterns = [
    *routes(
        "api/backup-destinations",
        _view({"get": "list_page", "post": "create"}),
        "api-backup-destinations",
    ),
    *routes(
        "api/backup-destinations/<str:id>",
        _view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        "api-backup-destination",
    ),
    *routes(
        "api/backup-destinations/<str:id>/test", _view({"post": "test"}), "api-destination-test"
    ),
]
