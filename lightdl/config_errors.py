"""One readable line out of jsonargparse's nested config errors.

jsonargparse reports a bad key deep inside `model.init_args.model.init_args` as a tree of
"Parser key", "Problem with given class_path" and union-alternative lines, followed by the
whole usage text. People need the key, the class and what is wrong with it.
"""

from __future__ import annotations

import re

_NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Given value type:",
    "Given value:",
    "- Expected a <class 'NoneType'>",
    "tip: For details",
)


def _clean_leaf(text: str) -> str:
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text)
    return text.rstrip(".").replace("Expected a ", "expected ")


def condense(message: str) -> str:
    """`model.init_args.model.init_args.dropout (lightdl.models.MLP): expected float. Got
    value: lots` from jsonargparse's multi-line error text."""
    path: list[str] = []
    cls = None
    leaf = None
    for raw in message.splitlines():
        line = raw.strip().lstrip("- ").strip()
        if line.startswith("error:"):
            line = line[len("error:"):].strip()
        if not line or any(line.startswith(n.lstrip("- ")) for n in _NOISE):
            continue
        m = re.match(r'Parser key "([^"]+)":\s*(.*)$', line)
        if m:
            path.append(m.group(1))
            line = m.group(2).strip()
            if not line:
                continue
        m = re.match(r"Problem with given class_path '([^']+)':\s*(.*)$", line)
        if m:
            cls = m.group(1)
            path.append("init_args")
            line = m.group(2).strip()
            if not line:
                continue
        leaf = line
        break
    if leaf is None:
        return message.strip().splitlines()[-1] if message.strip() else "invalid configuration"
    m = re.match(r"(?:Option|Key) '([^']+)' is not (?:accepted|expected)", leaf)
    if m:
        key = ".".join([*path, m.group(1)])
        where = f" ({cls} has no such argument)" if cls else ""
        return f"unknown config key {key!r}{where}"
    if path and path[-1] == "init_args":
        path = path[:-1]
    key = ".".join(path)
    if not key:
        return _clean_leaf(leaf)
    return f"config key {key!r}" + (f" ({cls})" if cls else "") + f": {_clean_leaf(leaf)}"


def is_jsonargparse_tree(message: str) -> bool:
    """Whether an exception message is one of jsonargparse's multi-line union reports (it
    wraps errors raised by the constructors of the configured classes in them)."""
    return "Does not validate against any of the Union subtypes" in message
