from api.base.routes import routes
from front.api.views import EvidenceView

urlpatterns = [
    *routes(
        "api/organizations/<str:id>/evidence", EvidenceView.as_view, "api-organization-evidence"
    ),
]
