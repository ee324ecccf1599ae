"""Runs the whole flow: CLI, local stack, demo, conformance battery, pytest plugin."""

from harness.servers import ServedApp, bind_loopback, serve_in_thread, start_in_thread

__all__ = ["ServedApp", "bind_loopback", "serve_in_thread", "start_in_thread"]
