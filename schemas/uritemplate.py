"""URI templates (RFC 6570 level 2 subset) as matchers: `{var}` is one path segment, `{+var}` anything."""

from __future__ import annotations

import re
import urllib.parse

_VAR = re.compile(r"\{(\+?)([A-Za-z_][A-Za-z0-9_]*)\}")


def compile_template(template: str) -> re.Pattern[str]:
    out: list[str] = []
    pos = 0
    for m in _VAR.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        out.append(f"(?P<{m[2]}>.+)" if m[1] == "+" else f"(?P<{m[2]}>[^/?#]+)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


def match(pattern: re.Pattern[str], uri: str) -> dict[str, str] | None:
    """The template variables (percent-decoded) when `uri` matches, else None."""
    m = pattern.fullmatch(uri)
    return None if m is None else {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
