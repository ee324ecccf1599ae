"""What an MCP host embeds to forward its end users' identity to MCP servers."""

from client_runtime.auth import ForwardedIdentityAuth
from client_runtime.broker import TokenBroker, TokenKey
from client_runtime.credentials import (
    CredentialNotFoundError,
    CredentialType,
    EndUserCredential,
    EndUserCredentialStore,
)
from client_runtime.crypto import (
    DATA_KEY_ENV,
    DataCipher,
    DataKeyError,
    DecryptionError,
    TamperedRecordError,
    load_data_key,
)
from client_runtime.database import Database, LegacyRecordsError, SchemaVersionError
from client_runtime.errors import (
    MCPCredentialRequiredError,
    MCPIdentityForwardingError,
    MCPIdentityRefreshError,
    MCPIssuerConfigError,
    MCPMissingUserError,
    MCPNoRefreshTokenError,
    MCPProviderConfigError,
    MCPTokenError,
    MCPToolInvocationError,
    UnknownIdentityModeError,
)
from client_runtime.id_jag import AuthorizationServerClient, IdJagSource
from client_runtime.issuer_client import EnterpriseTokenClient, EnterpriseTokenSettings, IssuedToken
from client_runtime.legacy import reseal_legacy_rows
from client_runtime.modes import IdentityMode
from client_runtime.providers import MCPProvider, ProviderNotFoundError, ProviderStore
from client_runtime.runtime import MCPToolRuntime
from client_runtime.session_pool import SessionPoolSettings
from client_runtime.token_exchange import (
    ExchangedToken,
    IdpClientSettings,
    IdpTokenExchange,
    IdTokenSource,
    TokenExchangeSource,
)

__all__ = [
    "DATA_KEY_ENV",
    "AuthorizationServerClient",
    "CredentialNotFoundError",
    "CredentialType",
    "DataCipher",
    "DataKeyError",
    "Database",
    "DecryptionError",
    "EndUserCredential",
    "EndUserCredentialStore",
    "EnterpriseTokenClient",
    "EnterpriseTokenSettings",
    "ExchangedToken",
    "ForwardedIdentityAuth",
    "IdJagSource",
    "IdTokenSource",
    "IdentityMode",
    "IdpClientSettings",
    "IdpTokenExchange",
    "IssuedToken",
    "LegacyRecordsError",
    "MCPCredentialRequiredError",
    "MCPIdentityForwardingError",
    "MCPIdentityRefreshError",
    "MCPIssuerConfigError",
    "MCPMissingUserError",
    "MCPNoRefreshTokenError",
    "MCPProvider",
    "MCPProviderConfigError",
    "MCPTokenError",
    "MCPToolInvocationError",
    "MCPToolRuntime",
    "ProviderNotFoundError",
    "ProviderStore",
    "SchemaVersionError",
    "SessionPoolSettings",
    "TamperedRecordError",
    "TokenBroker",
    "TokenExchangeSource",
    "TokenKey",
    "UnknownIdentityModeError",
    "load_data_key",
    "reseal_legacy_rows",
]
