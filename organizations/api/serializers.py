from rest_framework import serializers


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    tokenType = serializers.CharField(default="Bearer")  # noqa: N815 - the API's casing
    expiresIn = serializers.IntegerField(help_text="Seconds until the token expires.")  # noqa: N815
