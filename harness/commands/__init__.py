"""Subcommands of `mcp-idfwd`; each module has `register(subparsers)`."""
