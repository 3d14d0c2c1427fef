"""Question answering with cited sources over a team's Chinese Markdown articles."""

__version__ = "0.1.0"

__all__ = ["Assistant", "__version__"]


def __getattr__(name: str):
    # Lazy so that `import qa` (e.g. for the CLI's --help) does not pull in torch.
    if name == "Assistant":
        from qa.assistant import Assistant

        return Assistant
    raise AttributeError(name)
