"""FastAPI routers, one per actor or resource; handlers stay thin and call node services."""
