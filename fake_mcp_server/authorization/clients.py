"""The confidential clients the authorization server knows: provisioned ones and self-registered ones."""

from __future__ import annotations

from mcp.server.auth.provider import RegistrationError
from mcp.shared.auth import JWT_BEARER_GRANT_TYPE, OAuthClientInformationFull

from fake_mcp_server.authorization.settings import ClientCredentials

__all__ = ["ClientRegistry"]


def _provisioned(credentials: ClientCredentials) -> OAuthClientInformationFull:
    return OAuthClientInformationFull(
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        redirect_uris=None,
        grant_types=[JWT_BEARER_GRANT_TYPE],
        token_endpoint_auth_method="client_secret_post",
    )


class ClientRegistry:
    """Clients by id. Provisioned clients authenticate with `client_secret_post`."""

    def __init__(self, provisioned: tuple[ClientCredentials, ...], *, max_registered: int) -> None:
        self._clients = {credentials.client_id: _provisioned(credentials) for credentials in provisioned}
        self._max_registered = max_registered
        self._registered = 0

    def __repr__(self) -> str:
        return f"ClientRegistry({len(self._clients)} clients)"

    def get(self, client_id: str) -> OAuthClientInformationFull | None:
        return self._clients.get(client_id)

    def register(self, client: OAuthClientInformationFull) -> None:
        """Keep a client that registered itself (RFC 7591), and let it present ID-JAGs.

        The SDK's registration handler grants self-registered clients only the authorization
        code grant, which this server does not serve. We add the jwt-bearer grant, in the record
        the registration response echoes, so the answer tells the client what it may do. That is
        safe here because the grant is bound to the client by the ID-JAG's `client_id` claim: a
        client can only redeem ID-JAGs the IdP issued to exactly its (server-chosen) client id.
        """
        if client.client_id is None or not client.client_secret:
            raise RegistrationError(
                "invalid_client_metadata",
                "only confidential clients can use this authorization server; do not ask for"
                " token_endpoint_auth_method 'none'",
            )
        if client.client_id in self._clients:
            raise RegistrationError("invalid_client_metadata", "client id already taken")
        if self._registered >= self._max_registered:
            raise RegistrationError("invalid_client_metadata", "no more clients can register here")
        if JWT_BEARER_GRANT_TYPE not in client.grant_types:
            client.grant_types = [*client.grant_types, JWT_BEARER_GRANT_TYPE]
        self._clients[client.client_id] = client
        self._registered += 1
