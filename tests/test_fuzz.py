"""Fuzzing the fixture payloads: a line that cannot be a sample costs that line, nothing else.

Every fixture payload (each component and release) is mutated, with a fixed seed: bytes flipped,
truncated, CRLF line ends, escapes in label values (valid and not), label values longer than
`max_line_length`, exemplars, `{}`, broken and conflicting TYPE lines. The oracle is the
Prometheus text format itself (`valid_lines` below: the exposition grammar, and a second TYPE of
another type refused): the payload with only the lines it accepts must give exactly the same
submissions, and each line it refuses is counted in `cilium.check.lines_skipped`. No run may raise
anything but the check's documented errors, with either parser.

`CILIUM_FUZZ_CASES` raises the number of mutated payloads (the suite runs 200).
"""

from __future__ import annotations

import json
import os
import random
import re

import pytest

from cilium_check.components import BY_NAME
from cilium_dev.fixtures.payloads import FIXTURE_CASES, render
from datadog_checks.cilium import CiliumCheck
from hostile_gen import is_documented_error

SEED = 20261201
CASES = int(os.environ.get("CILIUM_FUZZ_CASES", "200"))
MAX_LINE = 2048  # the instances' `max_line_length`, small so that long label values cross it

# The Prometheus text format (0.0.4): names, quoted label values with \\, \" and \n escapes, a Go
# float, an optional integer timestamp; blanks between tokens are spaces or tabs.
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABELS = rf"\{{[ \t]*(?:{LABEL}[ \t]*=[ \t]*{LABEL_VALUE}[ \t]*(?:,[ \t]*{LABEL}[ \t]*=[ \t]*{LABEL_VALUE}[ \t]*)*,?[ \t]*)?\}}"
VALUE = r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[Nn][Aa][Nn]|[Ii][Nn][Ff](?:[Ii][Nn][Ii][Tt][Yy])?)"
# The name is read whole (`*+`): `y17` is a name without a value, `y-7` a name and its value.
SAMPLE = re.compile(rf"([a-zA-Z_:][a-zA-Z0-9_:]*+)[ \t]*(?:{LABELS})?[ \t]*{VALUE}(?:[ \t]+-?\d+)?")
TYPE_LINE = re.compile(rf"#[ \t]+TYPE[ \t]+({NAME})[ \t]+(counter|gauge|histogram|summary|untyped)")
HELP_LINE = re.compile(rf"#[ \t]+HELP[ \t]+({NAME})(?:[ \t].*)?")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def valid_lines(text: str, max_line_length: int = MAX_LINE) -> tuple[list[str], int]:
    """The lines of an exposition that the text format accepts and the check can represent, and
    how many sample or TYPE/HELP lines are not (what the check must count as skipped). What the
    format accepts but no Datadog metric can hold: a histogram bucket without `le`."""
    kept, refused = [], 0
    declared: dict[str, str] = {}
    current = ("", "")  # the family the last TYPE line declared, and its type
    for raw in text.split("\n"):
        line = raw.strip()
        if len(raw) > max_line_length:
            refused += 1
            continue
        if not line:
            kept.append(raw)
            continue
        if line.startswith("#"):
            parts = line.split()
            # `# HELP` without a name and `# TYPE` without a type are comments to Prometheus.
            if len(parts) >= 3 and (parts[1] == "HELP" or (parts[1] == "TYPE" and len(parts) >= 4)):
                match = (TYPE_LINE if parts[1] == "TYPE" else HELP_LINE).fullmatch(line)
                if match is None:
                    refused += 1
                    continue
                if parts[1] == "TYPE" and declared.setdefault(match.group(1), match.group(2)) != match.group(2):
                    refused += 1  # a second TYPE of another type
                    continue
                if parts[1] == "TYPE":
                    current = (match.group(1), match.group(2))
            kept.append(raw)
            continue
        match = SAMPLE.fullmatch(line)
        if match is None:
            refused += 1
            continue
        if not representable(line, match.group(1), current):
            refused += 1
            continue
        kept.append(raw)
    return kept, refused


def representable(line: str, name: str, family: tuple[str, str]) -> bool:
    """Whether a sample the format accepts can become a Datadog metric: a histogram bucket needs a
    numeric `le`, a summary quantile a numeric `quantile`."""
    family_name, kind = family
    label = {"histogram": ("le", f"{family_name}_bucket"), "summary": ("quantile", family_name)}.get(kind)
    if label is None or name != label[1]:
        return True
    found = re.search(rf'[{{,][ \t]*{label[0]}[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"', line)
    if found is None:
        return kind != "histogram"  # a quantile-less summary sample is a gauge without the tag
    bound = found.group(1)
    try:
        float(bound)
    except ValueError:
        return False
    return bound == bound.strip()  # Prometheus's ParseFloat takes no blanks around the number


# -- mutations -----------------------------------------------------------------------------------


def flip_byte(rng: random.Random, lines: list[str]) -> list[str]:
    i = rng.randrange(len(lines))
    data = bytearray(lines[i].encode())
    if data:
        data[rng.randrange(len(data))] = rng.choice(b'{}"=,\\ #\t_:ax0.+-\x00\xff')
    lines[i] = data.decode("utf-8", "replace")
    return lines


def truncate(rng: random.Random, lines: list[str]) -> list[str]:
    text = "\n".join(lines)
    return text[: rng.randrange(1, len(text))].split("\n")


def crlf(rng: random.Random, lines: list[str]) -> list[str]:
    return [line + "\r" if rng.random() < 0.3 else line for line in lines]


def escapes(rng: random.Random, lines: list[str]) -> list[str]:
    i = rng.randrange(len(lines))
    escape = rng.choice(('\\"', "\\\\", "\\n", "\\t", "\\x", '\\"\\\\'))
    lines[i] = lines[i].replace('="', f'="{escape}', 1)
    return lines


def long_label(rng: random.Random, lines: list[str]) -> list[str]:
    i = rng.randrange(len(lines))
    lines[i] = lines[i].replace('="', '="' + "y" * rng.choice((MAX_LINE - 40, MAX_LINE + 10, 3 * MAX_LINE)), 1)
    return lines


def exemplar(rng: random.Random, lines: list[str]) -> list[str]:
    samples = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    i = rng.choice(samples)
    lines[i] = f'{lines[i]} # {{trace_id="{rng.randrange(10**6)}"}} 0.5 1700000000'
    return lines


def empty_labels(rng: random.Random, lines: list[str]) -> list[str]:
    samples = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    i = rng.choice(samples)
    name = re.split(r"[{ \t]", lines[i], maxsplit=1)[0]
    value = lines[i].rsplit(" ", 1)[-1]
    lines[i] = rng.choice((f"{name}{{}} {value}", f"{name}{{,}} {value}", f"{name}{{}}", "{} 1", f"{name}{{a=\"b\"}}{{}} 1"))
    return lines


def bad_type(rng: random.Random, lines: list[str]) -> list[str]:
    types = [i for i, line in enumerate(lines) if line.startswith("# TYPE ")]
    i = rng.choice(types)
    name = lines[i].split()[2]
    other = rng.choice(TYPES)
    lines.insert(i + 1, rng.choice((f"# TYPE {name} {other}", f"# TYPE {name} bogus", "# TYPE 0bad gauge", "# TYPE")))
    return lines


MUTATIONS = (flip_byte, truncate, crlf, escapes, long_label, exemplar, empty_labels, bad_type)


def mutated_payloads(count: int):
    rng = random.Random(SEED)
    payloads = list(FIXTURE_CASES)
    for case in range(count):
        component, version = payloads[case % len(payloads)]
        lines = render(component, version, case).split("\n")
        for mutate in rng.sample(MUTATIONS, rng.randint(1, 3)):
            lines = mutate(rng, lines)
        yield case, component, version, "\n".join(lines)


# -- the runs ------------------------------------------------------------------------------------


def submissions(aggregator) -> list[tuple]:
    """What was submitted, but for the `endpoint` tag (the two payloads are served at two URLs)."""
    return sorted(
        (m.name, m.type, m.value, tuple(sorted(t for t in m.tags if not t.startswith("endpoint:"))), m.hostname, m.flush_first_value)
        for name in aggregator._metrics
        if not name.startswith("cilium.check.")
        for m in aggregator._metrics[name]
    )


def skipped(aggregator) -> float:
    return sum(m.value for m in aggregator.metrics("cilium.check.lines_skipped"))


def batches(count: int, size: int) -> list[list]:
    cases = list(mutated_payloads(count))
    return [cases[i : i + size] for i in range(0, len(cases), size)]


@pytest.mark.parametrize("batch", batches(CASES, 25), ids=lambda b: f"cases-{b[0][0]}-{b[-1][0]}")
def test_mutated_payloads_lose_only_the_lines_the_format_refuses(fixture_server, aggregator, batch):
    for case, component, version, text in batch:
        kept, refused = valid_lines(text)
        urls = {}
        for which, body in (("mutated", text), ("kept", "\n".join(kept))):
            urls[which] = fixture_server.set_payload(f"/fuzz/{case}/{which}/metrics", body)
        results = {}
        for which, url in urls.items():
            aggregator.reset()
            option = BY_NAME[component].option
            instance = {option: url, "use_openmetrics": case % 4 != 0, "max_line_length": MAX_LINE}
            error = CiliumCheck("cilium", {}, [instance]).run()
            message = json.loads(error)[0]["message"] if error else ""
            assert not error or is_documented_error(message), f"case {case}: {message}"
            results[which] = (submissions(aggregator), skipped(aggregator), bool(error))
        mutated, clean = results["mutated"], results["kept"]
        if not any(SAMPLE.fullmatch(line.strip()) for line in kept):
            continue  # nothing left to compare: garbage alone is "not metrics", no lines at all is not
        assert mutated[2] == clean[2], f"case {case} ({component} {version}): one run failed, the other did not"
        assert mutated[0] == clean[0], f"case {case} ({component} {version}): submissions differ"
        if not mutated[2]:
            assert mutated[1] == refused, f"case {case}: {mutated[1]} lines skipped, the format refuses {refused}"


@pytest.mark.parametrize("batch", batches(40, 20), ids=lambda b: f"cases-{b[0][0]}-{b[-1][0]}")
def test_the_stock_parser_raises_only_documented_errors(fixture_server, aggregator, batch):
    for case, component, _, text in batch:
        url = fixture_server.set_payload(f"/fuzz-stock/{case}/metrics", text)
        instance = {BY_NAME[component].option: url, "use_openmetrics": True, "fast_path": False}
        error = CiliumCheck("cilium", {}, [instance]).run()
        if error:
            message = json.loads(error)[0]["message"]
            assert is_documented_error(message), f"case {case}: {message}"
