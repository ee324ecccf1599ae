"""The issuer: users, SSO grants, audience-bound JWTs, OIDC discovery and JWKS."""
