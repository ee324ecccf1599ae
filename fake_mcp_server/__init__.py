"""A real MCP server whose every request is checked by `JWKSTokenVerifier`."""
