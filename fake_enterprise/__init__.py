"""The issuer: users, SSO grants, audience-bound JWTs, OIDC discovery and JWKS."""

from fake_enterprise.admin_client import AdminAPIError, AdminClient, AdminClientError
from fake_enterprise.app import create_app
from fake_enterprise.authentication import SECRET_HEADER
from fake_enterprise.crypto import DATA_KEY_ENV, DataKeyError, StorageTamperedError
from fake_enterprise.settings import SIGNING_ALGORITHMS, SIGNING_MODES, TOKEN_PROFILES, IssuerSettings
from fake_enterprise.storage import DatabaseLock, DatabaseLockedError, DatabasePathError

__all__ = [
    "DATA_KEY_ENV",
    "SECRET_HEADER",
    "SIGNING_ALGORITHMS",
    "SIGNING_MODES",
    "TOKEN_PROFILES",
    "AdminAPIError",
    "AdminClient",
    "AdminClientError",
    "DataKeyError",
    "DatabaseLock",
    "DatabaseLockedError",
    "DatabasePathError",
    "IssuerSettings",
    "StorageTamperedError",
    "create_app",
]
