"""Reading untrusted YAML (recipes, inventories, ``--set`` values): the safe loader only (no
Python tags), UTF-8 only, a size limit, and a bound on what aliases expand to, so a
kilobyte "billion laughs" document is refused before anything walks it."""

from __future__ import annotations

from pathlib import Path

import yaml

from edgedeploy.core.bounded import read_bounded
from edgedeploy.core.errors import BadInput

MAX_NODES = 100_000  # a recipe or an inventory is hundreds of nodes; aliases may not multiply that


def expanded_size(node, limit: int = MAX_NODES) -> int:
    """How many nodes ``node`` stands for once every alias is followed (memoized, so linear in the
    document; stops counting past ``limit``)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(n) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in on_path:  # a recursive alias (&a [*a]) expands forever
            return limit + 1
        on_path.add(key)
        total = 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                total += size(k) + size(v)
                if total > limit:
                    break
        elif isinstance(n, yaml.SequenceNode):
            for item in n.value:
                total += size(item)
                if total > limit:
                    break
        on_path.discard(key)
        sizes[key] = total
        return total

    return size(node) if node is not None else 0


def compose_text(text: str, where: str, limit: int = MAX_NODES, with_line: bool = True):
    """(document, node tree) of YAML ``text``; ``BadInput`` naming ``where`` (and the line) otherwise."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if expanded_size(node, limit) > limit:
            raise BadInput(f"{where}: YAML aliases expand to over {limit:,} nodes; refusing it (write the values out)")
        doc = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark and with_line else ""
        raise BadInput(f"{where}{line}: not valid YAML ({getattr(exc, 'problem', None) or str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise BadInput(f"{where}: YAML nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    return doc, node


def read_yaml(path: Path, what: str, max_bytes: int):
    """(document, node tree) of the YAML file at ``path``, a ``what`` (e.g. "recipe")."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such {what} file")
    raw = read_bounded(path, max_bytes, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not a text file (a {what} is UTF-8 YAML)") from None
    if "\x00" in text:
        raise BadInput(f"{path}: not a text file (a {what} is UTF-8 YAML)")
    return compose_text(text, str(path))
