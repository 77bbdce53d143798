from api.base.routes import routes
from organizations.api import views

_projects = views.ProjectViewSet.as_view
_environments = views.EnvironmentViewSet.as_view
_databases = views.DatabaseViewSet.as_view
_one = {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
_many = {"get": "list_page", "post": "create"}

urlpatterns = [
    *routes("api/auth/token", views.ObtainTokenView.as_view, name="api-auth-token"),
    *routes("api/organizations", views.OrganizationListView.as_view, name="api-organizations"),
    *routes("api/projects", lambda **kw: _projects(_many, **kw), name="api-projects"),
    *routes("api/projects/<str:projectId>", lambda **kw: _projects(_one, **kw), name="api-project"),
    *routes(
        "api/projects/<str:projectId>/environments",
        lambda **kw: _environments(_many, **kw),
        name="api-environments",
    ),
    *routes(
        "api/environments/<str:env_id>",
        lambda **kw: _environments(_one, **kw),
        name="api-environment",
    ),
    *routes(
        "api/environments/<str:env_id>/databases",
        lambda **kw: _databases(_many, **kw),
        name="api-databases",
    ),
    *routes(
        "api/databases/<str:databaseId>", lambda **kw: _databases(_one, **kw), name="api-database"
    ),
]
