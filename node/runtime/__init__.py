"""A running node: its settings, what it holds (context), the HTTP server and its request helpers."""
