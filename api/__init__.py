"""The HTTP service (FastAPI) and chat-bot adapters over the ``qa`` library."""
