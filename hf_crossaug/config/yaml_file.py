"""Reading YAML the strict way: a key given twice is an error, not "the last one wins"."""

from __future__ import annotations

from pathlib import Path

import yaml


class _UniqueKeyLoader(yaml.SafeLoader):
    """A `yaml.SafeLoader` that refuses duplicate mapping keys (PyYAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = []  # a list: a key may be unhashable (PyYAML reports that itself)
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice (line {line})",
                                                        key_node.start_mark)
            seen.append(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path, what: str = "file"):
    """The YAML document in ``path``; a syntax error, a duplicate key or bad encoding is one `ValueError` line."""
    path = Path(path)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.constructor.ConstructorError as exc:
        raise ValueError(f"{what} {path} is not valid YAML: {exc.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
