"""What an MCP host embeds to forward its end users' identity to MCP servers."""
