from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ApplicationError
from organizations.api.serializers import TokenRequestSerializer, TokenResponseSerializer
from organizations.authentication import issue_jwt


class InvalidCredentials(ApplicationError):
    status_code = 401
    code = "invalid_credentials"


class ObtainTokenView(APIView):
    """Exchange a username and password for a short-lived JWT."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        request=TokenRequestSerializer,
        responses={200: TokenResponseSerializer},
        tags=["auth"],
        auth=[],
    )
    def post(self, request):
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        if user is None:
            raise InvalidCredentials("Invalid username or password.")
        token, ttl = issue_jwt(user)
        return Response({"token": token, "tokenType": "Bearer", "expiresIn": ttl})
