"""The member node: chain gateway, keys, store, API and CLI."""
