"""HTTP API: the FastAPI app factory and one router per resource."""
