"""pytest plugin (entry point `pytest11: idfwd`): fixtures for a running issuer and MCP server."""
