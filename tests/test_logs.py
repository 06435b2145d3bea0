"""Local evaluation of the Cilium log pipeline (assets/logs/cilium.yaml) against its samples.

Datadog runs log pipelines server side, so they cannot be executed here.  This module replays
the pipeline in-process: the grok parsers are compiled with ``pygrok`` (PyPI; a Logstash-style
grok implementation on top of the ``regex`` module) and the remappers are emulated, then every
sample of ``assets/logs/cilium_tests.yaml`` must give the attributes, message, status and
timestamp listed there.

What is Datadog-specific and how it is emulated
-----------------------------------------------
* Rule syntax.  Datadog grok is ``%{MATCHER:EXTRACT:FILTER}`` with lower-case matchers, rules
  written ``name pattern`` in ``supportRules``/``matchRules``, extract names that may contain dots
  (``cilium.source_location`` is the nested attribute ``{"cilium": {"source_location": ...}}``)
  and extract-less filters (``%{data::keyvalue(...)}`` merges its result into the root).
  pygrok only knows ``%{PATTERN:name}`` with ``\\w+`` names.  ``translate()`` therefore rewrites
  each Datadog token into a pygrok token: ``word`` -> ``WORD``, ``notSpace`` -> ``NOTSPACE``,
  ``data`` -> ``GREEDYDATA``, ``integer`` -> ``INT``, ``number`` -> ``NUMBER`` (pygrok's bundled
  patterns, the same regexes Datadog documents), ``regex("...")`` -> a generated custom pattern,
  support rules -> custom patterns, and extract names -> generated group names ``gN`` whose
  attribute path and filter are kept on the side.  ``date(...)`` is not used by this pipeline and
  is not emulated (the test fails loudly if it appears).
* ``regex("...")`` arguments are string literals: ``\\"`` is a quote and ``\\\\`` a backslash;
  any other backslash sequence is passed to the regex engine unchanged.
* Datadog anchors every rule (implicit ``^...$``) and the first matching rule wins; pygrok uses
  ``search``, so the translated rules are wrapped in ``^(?:...)$`` and tried in order.
* ``keyvalue(separator, allowList, quotes, delimiters)`` does not exist in pygrok and is
  re-implemented in ``keyvalue()`` after the open-source port of Datadog's grok in Vector/VRL
  (``src/datadog/grok/filters/keyvalue.rs``): pairs are found with the same regex (values are
  ``[\\w.\\-_@<allowList>]+`` or a ``"..."``/``'...'``/``<...>`` quoted run without escape
  support), quotes are stripped, ``null``/empty values dropped, ``true``/``false`` become booleans
  and numbers become integers/floats (so ``endpointID=527`` gives ``527``).
* JSON lines are not grok-parsed by Datadog's rules: its JSON preprocessing turns the object into
  attributes and takes the message from ``msg``.  ``run_pipeline()`` does the same, then runs the
  whole pipeline (the grok parsers see the extracted message and must not match it).
* Remappers.  status-remapper: first present source, mapped with Datadog's documented status
  rules (``emerg``/``f*`` -> emergency, ``a*`` alert, ``c*`` critical, ``e*`` error, ``w*`` warning,
  ``n*`` notice, ``i*`` info, ``d*``/``trace``/``verbose`` debug, ``o*``/``s*``/``ok``/``success``
  ok, anything else info); the log starts with status ``error`` because Cilium writes to stderr.
  date-remapper: ISO 8601 string -> epoch milliseconds (sub-millisecond digits truncated).
  message-remapper: first present source becomes the message.  status, date and message remappers
  keep their source attribute; attribute-remapper removes it unless ``preserveSource`` and does
  nothing when the target exists and ``overrideOnConflict`` is false.  lookup-processor: exact
  ``key,value`` table lookup into the target attribute.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

pygrok = pytest.importorskip("pygrok", reason="pygrok (dev extra) is needed to evaluate the grok rules")
regex = pytest.importorskip("regex")

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "logs"
PIPELINE_FILE = ASSETS / "cilium.yaml"
TESTS_FILE = ASSETS / "cilium_tests.yaml"

# Datadog matcher -> pygrok bundled pattern (identical regexes: \b\w+\b, \S+, .*, ...).
MATCHERS = {
    "word": "WORD",
    "notSpace": "NOTSPACE",
    "data": "GREEDYDATA",
    "integer": "INT",
    "number": "NUMBER",
}
PROCESSOR_TYPES = {
    "grok-parser",
    "status-remapper",
    "date-remapper",
    "message-remapper",
    "attribute-remapper",
    "lookup-processor",
}


def _pick(proc: dict, camel: str, snake: str, default=None):
    """Processor keys: integrations-core assets use camelCase, the public API snake_case."""
    if camel in proc:
        return proc[camel]
    return proc.get(snake, default)


# ---------------------------------------------------------------------------------------------
# keyvalue filter (Datadog-specific; after vectordotdev/vrl src/datadog/grok/filters/keyvalue.rs)
# ---------------------------------------------------------------------------------------------
_DEFAULT_VALUE_RE = r"\w.\-_@"
_DEFAULT_QUOTES = [('"', '"'), ("'", "'"), ("<", ">")]
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _keyvalue_regex(separator: str, allow: str, quotes):
    value_re = _DEFAULT_VALUE_RE + allow
    quoting = "(" + "".join(f"{re.escape(l)}[^{re.escape(l)}]+{re.escape(r)}|" for l, r in quotes) + "["
    return regex.compile(
        r"(?<=[\s,;(\[{]|^)" + quoting + value_re + "]+)" + separator + quoting + value_re + r"]+)(?:[\s,;)\]}]|$)"
    )


def _kv_value(raw: str, quotes):
    raw = raw.strip().rstrip(",")
    if raw.startswith("null"):
        return None
    if raw.startswith("true"):
        return True
    if raw.startswith("false"):
        return False
    if _NUMBER.fullmatch(raw) and not (raw.startswith("0") and re.fullmatch(r"0\d*[89]\d*", raw)):
        number = float(raw)
        return int(number) if number == int(number) else number
    for left, right in quotes:
        if len(raw) >= 2 and raw[0] == left and raw[-1] == right and right not in raw[1:-1]:
            return raw[1:-1]
    return raw


def keyvalue(text: str, separator: str = "=", allow: str = "", quoting: str = "") -> dict:
    quotes = [(quoting[0], quoting[1])] if len(quoting) == 2 else list(_DEFAULT_QUOTES)
    result: dict = {}
    for m in _keyvalue_regex(separator, allow, quotes).finditer(text):
        key = m.group(1).strip()
        for left, right in quotes:
            if len(key) >= 2 and key[0] == left and key[-1] == right:
                key = key[1:-1]
                break
        if " " in key or not key:
            continue
        value = _kv_value(m.group(2), quotes)
        if value is None or value == "":
            continue
        if key in result:
            prev = result[key]
            result[key] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            result[key] = value
    return result


# ---------------------------------------------------------------------------------------------
# Datadog grok -> pygrok translation
# ---------------------------------------------------------------------------------------------
def _split_token(body: str) -> list[str]:
    """Split MATCHER:EXTRACT:FILTER on colons that are outside quotes and parentheses."""
    parts, cur, depth, quote, i = [], "", 0, False, 0
    while i < len(body):
        ch = body[i]
        if quote:
            cur += ch
            if ch == "\\" and i + 1 < len(body):
                cur += body[i + 1]
                i += 1
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote, cur = True, cur + ch
        elif ch == "(":
            depth, cur = depth + 1, cur + ch
        elif ch == ")":
            depth, cur = depth - 1, cur + ch
        elif ch == ":" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    parts.append(cur)
    return parts


def _string_args(call: str) -> list[str]:
    """Arguments of name("a", "b"): Datadog string literals, \\" and \\\\ unescaped."""
    args = []
    for lit in re.findall(r'"((?:[^"\\]|\\.)*)"', call[call.index("(") :]):
        args.append(re.sub(r'\\(["\\])', r"\1", lit))
    return args


class GrokParser:
    """One Datadog grok-parser processor, compiled with pygrok."""

    def __init__(self, grok: dict):
        self.custom: dict[str, str] = {}
        self.groups: dict[str, tuple[str | None, str | None]] = {}
        self._n = 0
        for name, pattern in self._rules(_pick(grok, "supportRules", "support_rules", "")):
            self.custom[name] = self.translate(pattern)
        self.rules = []
        for name, pattern in self._rules(_pick(grok, "matchRules", "match_rules", "")):
            translated = "^(?:" + self.translate(pattern) + ")$"
            self.rules.append((name, pygrok.Grok(translated, custom_patterns=self.custom)))

    @staticmethod
    def _rules(text: str):
        for line in (text or "").splitlines():
            if line.strip():
                name, _, pattern = line.strip().partition(" ")
                yield name, pattern.strip()

    def translate(self, pattern: str) -> str:
        out, i = [], 0
        while i < len(pattern):
            start = pattern.find("%{", i)
            if start < 0:
                out.append(pattern[i:])
                break
            out.append(pattern[i:start])
            j, quote = start + 2, False
            while pattern[j] != "}" or quote:
                if pattern[j] == "\\" and quote:
                    j += 1
                elif pattern[j] == '"':
                    quote = not quote
                j += 1
            out.append(self._token(pattern[start + 2 : j]))
            i = j + 1
        return "".join(out)

    def _token(self, body: str) -> str:
        parts = _split_token(body) + [None, None]
        matcher, extract, filt = parts[0], parts[1] or None, parts[2] or None
        if matcher in MATCHERS:
            name = MATCHERS[matcher]
        elif matcher in self.custom:
            name = matcher
        elif matcher.startswith("regex("):
            self._n += 1
            name = f"DDREGEX{self._n}"
            self.custom[name] = _string_args(matcher)[0]
        else:  # date(...) and the other Datadog matchers are not used by this pipeline
            raise AssertionError(f"matcher {matcher!r} is not emulated")
        if extract is None and filt is None:
            return "%{" + name + "}"
        self._n += 1
        group = f"g{self._n}"
        self.groups[group] = (extract, filt)
        return "%{" + name + ":" + group + "}"

    def parse(self, text: str):
        """First matching rule (Datadog order) -> (rule name, extracted attributes) or None."""
        for rule, grok in self.rules:
            m = grok.match(text)
            if m is None:
                continue
            attrs: dict = {}
            for group, value in m.items():
                if value is None or group not in self.groups:
                    continue
                extract, filt = self.groups[group]
                if filt is None:
                    result = value
                elif filt.startswith("keyvalue"):
                    result = keyvalue(value, *(_string_args(filt) if "(" in filt else []))
                elif filt == "integer":
                    result = int(value)
                elif filt == "number":
                    result = float(value)
                else:
                    raise AssertionError(f"filter {filt!r} is not emulated")
                if extract:
                    _set(attrs, extract, result)
                elif isinstance(result, dict):
                    for key, val in result.items():
                        _set(attrs, key, val)
            return rule, attrs
        return None


# ---------------------------------------------------------------------------------------------
# Attribute helpers and remapper emulation
# ---------------------------------------------------------------------------------------------
def _get(attrs: dict, path: str):
    cur = attrs
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _set(attrs: dict, path: str, value) -> None:
    parts = path.split(".")
    cur = attrs
    for part in parts[:-1]:
        if not isinstance(cur.get(part), dict):
            cur[part] = {}
        cur = cur[part]
    cur[parts[-1]] = value


def _delete(attrs: dict, path: str) -> None:
    parts = path.split(".")
    cur = attrs
    for part in parts[:-1]:
        cur = cur.get(part)
        if not isinstance(cur, dict):
            return
    cur.pop(parts[-1], None)
    if len(parts) > 1 and not cur:  # drop emptied parents
        _delete(attrs, ".".join(parts[:-1]))


def datadog_status(value) -> str:
    """Datadog's status remapper mapping (docs: Log Management > Processors > Status remapper)."""
    if isinstance(value, int) and 0 <= value <= 7:
        return ["emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"][value]
    v = str(value).strip().lower()
    if v.startswith(("emerg", "f")):
        return "emergency"
    if v.startswith("a"):
        return "alert"
    if v.startswith("c"):
        return "critical"
    if v.startswith("e"):
        return "error"
    if v.startswith("w"):
        return "warning"
    if v.startswith("n"):
        return "notice"
    if v.startswith("i"):
        return "info"
    if v.startswith(("d", "trace", "verbose")):
        return "debug"
    if v.startswith(("o", "s")):
        return "ok"
    return "info"


_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?(Z|[+-]\d\d:?\d\d)?$")


def iso_to_ms(value: str) -> int:
    m = _ISO.match(value)
    assert m, f"date remapper cannot read {value!r}"
    y, mo, d, h, mi, s, frac, tz = m.groups()
    offset = 0
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        offset = sign * (int(tz[1:3]) * 60 + int(tz[-2:])) * 60
    dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=UTC)
    return int(dt.timestamp() - offset) * 1000 + int((frac or "0")[:3].ljust(3, "0"))


def load_pipeline() -> dict:
    return yaml.safe_load(PIPELINE_FILE.read_text())


def compile_parsers(pipeline: dict) -> dict[int, GrokParser]:
    return {
        i: GrokParser(p["grok"]) for i, p in enumerate(pipeline["pipeline"]["processors"]) if p["type"] == "grok-parser"
    }


def run_pipeline(line: str, pipeline: dict, parsers: dict[int, GrokParser]) -> dict:
    """The log as Datadog would store it: custom attributes, message, status, timestamp."""
    line = line.rstrip("\n")
    attrs: dict = {}
    message = line
    if line.lstrip().startswith("{"):
        attrs = json.loads(line)  # Datadog JSON preprocessing
        if isinstance(attrs.get("msg"), str):
            message = attrs["msg"]
    status = "error"  # stream=stderr
    timestamp = None
    for i, proc in enumerate(pipeline["pipeline"]["processors"]):
        if not proc.get("enabled", True):
            continue
        kind = proc["type"]
        if kind == "grok-parser":
            source = proc.get("source", "message")
            text = message if source == "message" else _get(attrs, source)
            parsed = parsers[i].parse(text) if isinstance(text, str) else None
            if parsed:
                for key, value in parsed[1].items():
                    if isinstance(value, dict) and isinstance(attrs.get(key), dict):
                        attrs[key].update(value)
                    else:
                        attrs[key] = value
            continue
        if kind == "lookup-processor":
            value = _get(attrs, proc["source"])
            table = _pick(proc, "lookupTable", "lookup_table", "")
            rows = table.splitlines() if isinstance(table, str) else table
            mapping = dict(row.split(",", 1) for row in rows if row.strip())
            if value is not None and str(value) in mapping:
                _set(attrs, proc["target"], mapping[str(value)])
            continue
        present = [s for s in proc["sources"] if _get(attrs, s) is not None]
        if not present:
            continue
        value = _get(attrs, present[0])
        if kind == "status-remapper":
            status = datadog_status(value)
        elif kind == "date-remapper":
            timestamp = iso_to_ms(value)
        elif kind == "message-remapper":
            message = str(value)
        elif kind == "attribute-remapper":
            target = proc["target"]
            if _get(attrs, target) is not None and not _pick(proc, "overrideOnConflict", "override_on_conflict", False):
                continue
            if not _pick(proc, "preserveSource", "preserve_source", False):
                _delete(attrs, present[0])
            _set(attrs, target, value)
        else:
            raise AssertionError(f"processor {kind} is not emulated")
    return {"custom": attrs, "message": message, "status": status, "timestamp": timestamp}


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------
PIPELINE = load_pipeline()
PARSERS = compile_parsers(PIPELINE)
CASES = yaml.safe_load(TESTS_FILE.read_text())["tests"]


def test_pipeline_definition_shape():
    assert PIPELINE["id"] == "cilium"
    assert PIPELINE["metric_id"] == "cilium"
    assert PIPELINE["backend_only"] is False
    pipe = PIPELINE["pipeline"]
    assert pipe["type"] == "pipeline" and pipe["name"] == "Cilium" and pipe["enabled"] is True
    query = pipe["filter"]["query"]
    assert "cilium-agent" in query and "cilium-operator" in query
    for proc in pipe["processors"]:
        assert proc["type"] in PROCESSOR_TYPES, proc
        assert proc.get("name") and proc.get("enabled") is True
        if proc["type"] == "grok-parser":
            assert proc["source"] == "message" and _pick(proc["grok"], "matchRules", "match_rules")
            assert 1 <= len(proc["samples"]) <= 5 and all(len(s) <= 5000 for s in proc["samples"])
        elif proc["type"] == "attribute-remapper":
            assert proc["sources"] and proc["target"]
            assert _pick(proc, "sourceType", "source_type") == "attribute"
            assert _pick(proc, "targetType", "target_type") == "attribute"
            assert _pick(proc, "preserveSource", "preserve_source") is not None
            assert _pick(proc, "overrideOnConflict", "override_on_conflict") is not None
        elif proc["type"] == "lookup-processor":
            assert proc["source"] and proc["target"] and _pick(proc, "lookupTable", "lookup_table")
        else:
            assert proc["sources"]
    facet_paths = {f["path"] for f in PIPELINE["facets"]}
    assert {"cilium.component", "cilium.endpoint_id", "cilium.identity", "error.message", "level"} <= facet_paths
    # every grok rule name follows Datadog's naming rule, and is unique within its parser
    for parser in PARSERS.values():
        names = [n for n, _ in parser.rules]
        assert len(names) == len(set(names))
        assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.]*", n) for n in names)


@pytest.mark.parametrize("index", sorted(PARSERS))
def test_grok_processor_samples_match(index):
    proc = PIPELINE["pipeline"]["processors"][index]
    for sample in proc["samples"]:
        assert PARSERS[index].parse(sample) is not None, f"no rule of {proc['name']!r} matches {sample!r}"


@pytest.mark.parametrize("case", CASES, ids=[f"sample{i}" for i in range(len(CASES))])
def test_sample_gives_expected_attributes(case):
    got = run_pipeline(case["sample"], PIPELINE, PARSERS)
    expected = case["result"]
    assert got["custom"] == expected["custom"]
    assert got["message"] == expected["message"]
    assert got["status"] == expected["status"]
    assert got["timestamp"] == expected.get("timestamp")


def test_text_samples_are_parsed_by_grok_and_json_samples_are_not():
    main = PARSERS[min(PARSERS)]
    for case in CASES:
        sample = case["sample"].rstrip("\n")
        if sample.startswith("{"):
            assert main.parse(json.loads(sample).get("msg", "")) is None, sample
        else:
            assert main.parse(sample) is not None, sample


def test_samples_cover_every_format_and_level():
    samples = [c["sample"].rstrip("\n") for c in CASES]
    text = [s for s in samples if not s.startswith("{")]
    js = [json.loads(s) for s in samples if s.startswith("{")]
    # logrus text / text-ts (quoted time), slog text / text-ts (bare time)
    assert any(s.startswith("level=") and " subsys=" in s and " module=" not in s for s in text)
    assert any(s.startswith('time="') and " subsys=" in s for s in text)
    assert any(s.startswith("level=") and " module=" in s for s in text)
    assert any(re.match(r"time=\d", s) and " module=" in s for s in text)
    assert any(re.search(r" msg=[^\"\s]", s) for s in text)  # bare msg token
    assert any(" source=" in s for s in text)  # slog AddSource at debug
    # logrus / slog JSON, with and without time
    assert any("subsys" in o and "time" not in o for o in js)
    assert any("subsys" in o and "time" in o for o in js)
    assert any("module" in o and "time" not in o for o in js)
    assert any("module" in o and "time" in o for o in js)
    levels = {m.group(1) for s in text for m in [re.search(r"level=(\w+)", s)] if m} | {o["level"] for o in js}
    assert {"debug", "info", "warning", "error", "fatal", "panic"} <= levels
    joined = "\n".join(samples)
    for attr in ("error", "err", "endpointID", "identity", "ipAddr", "k8sPodName"):
        assert re.search(rf'\b"?{attr}"?[=:]', joined), attr


def test_info_line_on_stderr_is_info_not_error():
    got = run_pipeline('level=info msg="Initializing daemon" subsys=daemon', PIPELINE, PARSERS)
    assert got["status"] == "info"
    got = run_pipeline('{"level":"info","msg":"Initializing daemon","subsys":"daemon"}', PIPELINE, PARSERS)
    assert got["status"] == "info"


@pytest.mark.parametrize(
    "level, status",
    [
        ("debug", "debug"),
        ("info", "info"),
        ("warn", "warning"),
        ("warning", "warning"),
        ("error", "error"),
        ("fatal", "emergency"),
        ("panic", "emergency"),
    ],
)
def test_every_cilium_level_maps_to_its_status(level, status):
    for line in (f'level={level} msg="x" subsys=daemon', json.dumps({"level": level, "msg": "x", "module": "m"})):
        assert run_pipeline(line, PIPELINE, PARSERS)["status"] == status


def test_line_without_level_keeps_stderr_status():
    # e.g. a Go panic trace continuation line: nothing says it is not an error
    got = run_pipeline("goroutine 1 [running]:", PIPELINE, PARSERS)
    assert got["status"] == "error" and got["message"] == "goroutine 1 [running]:"


def test_keyvalue_emulation_matches_documented_examples():
    # examples from Datadog's parsing documentation (keyvalue filter)
    assert keyvalue("key=valueStr") == {"key": "valueStr"}
    assert keyvalue('key="valueStr"') == {"key": "valueStr"}
    assert keyvalue("url=https://app.datadoghq.com/event/stream user=john", "=", "/:") == {
        "url": "https://app.datadoghq.com/event/stream",
        "user": "john",
    }
    assert keyvalue("url=https://app.datadoghq.com/event/stream user=john") == {"user": "john"}
    assert keyvalue("id=123 ratio=0.5 ok=true") == {"id": 123, "ratio": 0.5, "ok": True}


def test_pipeline_is_not_mutated_by_runs():
    before = copy.deepcopy(PIPELINE)
    for case in CASES:
        run_pipeline(case["sample"], PIPELINE, PARSERS)
    assert PIPELINE == before


def test_every_text_rule_is_exercised_by_the_samples():
    main = PARSERS[min(PARSERS)]
    matched = {main.parse(c["sample"].rstrip("\n"))[0] for c in CASES if not c["sample"].startswith("{")}
    assert matched == {name for name, _ in main.rules}
    bare = "time=2026-01-03T23:17:49.012Z level=error msg=k8sError error=x"
    assert main.parse(bare)[0] == "cilium_bare_msg"
    escaped = 'level=info msg="a \\"quoted\\" word" subsys=daemon'
    assert main.parse(escaped) == (
        "cilium_quoted_msg",
        {"level": "info", "msg": 'a \\"quoted\\" word', "subsys": "daemon"},
    )
