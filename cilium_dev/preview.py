"""`cilium-check preview`: each shipped dashboard rendered as HTML from the demo's data.

The check runs against the embedded fixture server (every component, as `cilium-check demo`
does), then every widget query of `assets/dashboards/*.json` is evaluated against the series
the Agent would have sent, by `cilium_check.queries` (the Datadog query subset the dashboards and
monitors use; a query whose metric was not submitted, or whose filters match nothing, shows "no data").

The pages are self-contained (inline CSS and SVG, no network).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from cilium_check.queries import QUERY_RE, Evaluator, Group

from . import demo
from cilium_check.agent_sim.runner import InstanceResult
from .demo import PAUSE, STATUS
from .fixtures.payloads import CURRENT

DEFAULT_OUT = Path("preview")
DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "assets" / "dashboards"
NO_DATA = "no data"

# --- collecting --------------------------------------------------------------------------


def collect(version: str | None = None) -> InstanceResult:
    """The demo's run (every component, twice, against the fixture server)."""
    result = demo.collect(version)
    if not result.loaded:
        raise RuntimeError(f"The check could not be loaded: {result.load_error}")
    return result


# --- rendering ---------------------------------------------------------------------------


def fmt(value: float, unit: str = "") -> str:
    if unit == "bytes":
        for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(value) < 1024 or suffix == "TiB":
                return f"{value:.3g} {suffix}" if suffix != "B" else f"{value:.0f} B"
            value /= 1024
    a = abs(value)
    if a >= 1e9:
        return f"{value / 1e9:.3g}G"
    if a >= 1e6:
        return f"{value / 1e6:.3g}M"
    if a >= 1e4:
        return f"{value / 1e3:.3g}K"
    if a == int(a):
        return f"{int(value)}"
    if a >= 100:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _unit_of(request: dict[str, Any]) -> str:
    return "bytes" if any("bytes" in q.get("query", "") for q in request.get("queries", [])) else ""


def _label(key: Group, alias: str, n_formulas: int) -> str:
    label = ", ".join(part.partition(":")[2] or part for part in key)
    if n_formulas > 1:
        return f"{alias}: {label}" if label else alias
    return label or (alias if not re.fullmatch(r"query\d+", alias) else "all")


def _rows(evaluator: Evaluator, request: dict[str, Any]) -> tuple[list[tuple[str, float]], list[str]]:
    results = evaluator.request(request)
    rows, missing = [], []
    for alias, data in results:
        if data is None:
            missing.append(alias)
            continue
        for key, value in data.items():
            rows.append((_label(key, alias, len(results)), value))
    return rows, missing


def _missing_html(request: dict[str, Any], evaluator: Evaluator) -> str:
    metrics = []
    for q in request.get("queries", []):
        m = QUERY_RE.match(q["query"])
        if m and not evaluator.by_metric.get(m["metric"]):
            metrics.append(f"{m['metric']} was not submitted")
        elif m and evaluator.query(q["query"]) is None:
            metrics.append(f"no {m['metric']} series match {{{m['filters']}}}")
    detail = "; ".join(dict.fromkeys(metrics)) or "the formula has no value"
    return f'<div class="nodata">{NO_DATA}<small>{html.escape(detail)}</small></div>'


def bars_svg(rows: list[tuple[str, float]], unit: str = "", limit: int = 12) -> str:
    rows = rows[:limit]
    top = max((abs(v) for _, v in rows), default=0) or 1
    height, width, label_w, value_w = 22, 760, 330, 90
    bar_w = width - label_w - value_w
    parts = [f'<svg class="bars" viewBox="0 0 {width} {height * len(rows)}" role="img">']
    for i, (label, value) in enumerate(rows):
        y = i * height
        w = max(1.0, bar_w * abs(value) / top)
        short = label if len(label) <= 48 else label[:47] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end"><title>{html.escape(label)}</title>'
            f"{html.escape(short)}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{height - 8}" rx="2" fill="#7b5ea7"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 15}" class="v">{html.escape(fmt(value, unit))}</text>'
        )
    parts.append("</svg>")
    more = f'<div class="more">… and {len(rows) - limit} more</div>' if len(rows) > limit else ""
    return "".join(parts) + more


def _markdown(text: str) -> str:
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"`(.+?)`", r"<code>\1</code>", out)
    return out.replace("\n", "<br>")


def render_widget(widget: dict[str, Any], evaluator: Evaluator, result: InstanceResult) -> str:
    d = widget["definition"]
    kind = d["type"]
    title = d.get("title", "")
    head = f'<h3>{html.escape(title)}</h3><span class="kind">{kind}</span>' if title else ""
    if kind == "note":
        color = d.get("background_color", "white")
        return f'<div class="card note {html.escape(color)}">{_markdown(d.get("content", ""))}</div>'
    if kind == "check_status":
        rows = [
            (
                sc.get("host_name", "?"),
                next((t.partition(":")[2] for t in sc["tags"] if t.startswith("cilium_component:")), "?"),
                sc,
            )
            for sc in result.service_checks
            if sc["check"] == d["check"]
        ]
        if not rows:
            return f'<div class="card">{head}<div class="nodata">{NO_DATA}</div></div>'
        items = "".join(
            f'<li><span class="st s{sc["status"]}">{STATUS[sc["status"]]}</span> {html.escape(host)} '
            f"<small>{html.escape(component)}</small></li>"
            for host, component, sc in rows
        )
        return f'<div class="card">{head}<ul class="checks">{items}</ul></div>'
    request = d["requests"][0]
    unit = _unit_of(request)
    rows, missing = _rows(evaluator, request)
    if not rows:
        return f'<div class="card">{head}{_missing_html(request, evaluator)}</div>'
    extra = f'<div class="partial">{NO_DATA}: {html.escape(", ".join(missing))}</div>' if missing else ""
    if kind == "query_value":
        value = sum(v for _, v in rows)
        label = next((f.get("number_format", {}).get("unit", {}).get("label", "") for f in request["formulas"]), "")
        precision = d.get("precision", 2)
        text = f"{value:.{precision}f}" if precision and value != int(value) else fmt(value, unit)
        return f'<div class="card">{head}<div class="qv">{html.escape(text)}<span>{html.escape(label)}</span></div>{extra}</div>'
    if kind == "toplist":
        limit = next((f.get("limit", {}).get("count", 10) for f in request["formulas"]), 10)
        ranked = sorted(rows, key=lambda r: -r[1])[:limit]
        items = "".join(
            f"<li><span>{html.escape(label)}</span><b>{html.escape(fmt(value, unit))}</b></li>"
            for label, value in ranked
        )
        return f'<div class="card">{head}<ol class="top">{items}</ol>{extra}</div>'
    if kind == "timeseries":
        ranked = sorted(rows, key=lambda r: -abs(r[1]))
        aliases = [f["alias"] for f in request.get("formulas", []) if f.get("alias")]
        sub = " · ".join(["latest value per series", *aliases])
        if any(".as_rate()" in q["query"] for q in request["queries"]):
            sub += " · per second"
        elif any(".as_count()" in q["query"] for q in request["queries"]) and not aliases:
            sub += " · count since the previous run"
        return f'<div class="card wide">{head}<div class="sub">{html.escape(sub)}</div>{bars_svg(ranked, unit)}{extra}</div>'
    return f'<div class="card">{head}<div class="nodata">widget type {html.escape(kind)} not previewed</div></div>'


CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;background:#f3f2f7;color:#1c1b22}
header{background:#632ca6;color:#fff;padding:16px 24px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;opacity:.9;font-size:13px;max-width:1100px}
.vars{padding:8px 24px;background:#fff;border-bottom:1px solid #ddd;font-size:13px}
.vars span{display:inline-block;border:1px solid #bbb;border-radius:4px;padding:2px 8px;margin-right:8px}
main{padding:8px 24px 32px}section{margin-top:18px}
section>h2{font-size:16px;margin:0 0 8px;padding:6px 10px;border-left:5px solid #632ca6;background:#e8e3f3}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
.card{background:#fff;border:1px solid #dcd8e6;border-radius:6px;padding:10px 12px;position:relative;overflow:hidden}
.card.wide{grid-column:span 2}.card h3{margin:0 72px 6px 0;font-size:13px;font-weight:600}
.kind{position:absolute;top:10px;right:10px;font-size:10px;color:#888}
.qv{font-size:40px;font-weight:600;color:#632ca6;padding:8px 0}.qv span{font-size:16px;margin-left:4px;color:#555}
.note{font-size:13px;line-height:1.45}.note.gray{background:#f4f4f6}.note.yellow{background:#fff8db}
.note code,.card code{background:#eee;padding:0 3px;border-radius:3px;font-size:12px}
.top{margin:0;padding-left:22px;font-size:13px}.top li{padding:2px 0}.top li span{display:inline-block;width:70%;
overflow:hidden;text-overflow:ellipsis;white-space:nowrap;vertical-align:bottom}.top b{float:right}
.bars{width:100%;font-size:12px}.bars text.v{fill:#333}.sub,.more{font-size:11px;color:#888}
.nodata{color:#b3261e;font-weight:600;padding:14px 0}.nodata small{display:block;font-weight:400;color:#777;margin-top:4px}
.partial{font-size:11px;color:#b3261e}.checks{list-style:none;margin:0;padding:0;font-size:13px}
.checks li{padding:3px 0}.st{display:inline-block;min-width:70px;text-align:center;border-radius:3px;color:#fff;font-size:11px;padding:1px 4px}
.s0{background:#2e9e44}.s1{background:#d99a00}.s2{background:#c62828}.s3{background:#777}
footer{padding:12px 24px;font-size:12px;color:#666}a{color:#632ca6}
"""


def render_dashboard(dashboard: dict[str, Any], evaluator: Evaluator, result: InstanceResult, version: str) -> str:
    sections, loose = [], []
    for widget in dashboard.get("widgets", []):
        d = widget["definition"]
        if d["type"] == "group":
            cards = "".join(render_widget(w, evaluator, result) for w in d.get("widgets", []))
            sections.append(
                f'<section><h2>{html.escape(d.get("title", ""))}</h2><div class="grid">{cards}</div></section>'
            )
        else:
            loose.append(render_widget(widget, evaluator, result))
    if loose:
        sections.insert(0, f'<section><div class="grid">{"".join(loose)}</div></section>')
    variables = "".join(
        f"<span>${html.escape(v['name'])} <small>({html.escape(v.get('prefix', ''))})</small> = "
        f"{html.escape(str(v.get('default', '*')))}</span>"
        for v in dashboard.get("template_variables", [])
    )
    title = html.escape(dashboard.get("title", ""))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title} (preview)</title>'
        f"<style>{CSS}</style></head><body><header><h1>{title}</h1>"
        f"<p>{html.escape(dashboard.get('description', ''))}</p></header>"
        f'<div class="vars">Template variables: {variables}</div><main>{"".join(sections)}</main>'
        f"<footer>Preview from <code>cilium-check preview</code>: the check against the embedded fixture server "
        f"(Cilium {html.escape(version)}, two runs {PAUSE:g} s apart; counts are the delta between them). "
        f'<a href="index.html">All dashboards</a></footer></body></html>\n'
    )


def dashboards(directory: Path = DASHBOARD_DIR) -> list[Path]:
    return sorted(directory.glob("*.json"))


def main(
    out_dir: str | Path | None = None, result: InstanceResult | None = None, version: str | None = None
) -> list[Path]:
    """Render every shipped dashboard and an index into `out_dir`; the paths written."""
    version = version or CURRENT
    out = Path(out_dir) if out_dir is not None else DEFAULT_OUT
    out.mkdir(parents=True, exist_ok=True)
    result = result or collect(version)
    evaluator = Evaluator(result.series, PAUSE, result.runs[0].flush.series if result.runs else ())
    written, links = [], []
    for path in dashboards():
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        page = out / f"{path.stem}.html"
        page.write_text(render_dashboard(dashboard, evaluator, result, version), encoding="utf-8")
        written.append(page)
        links.append(
            f'<li><a href="{page.name}">{html.escape(dashboard.get("title", path.stem))}</a> '
            f"<small>({path.name})</small></li>"
        )
    index = out / "index.html"
    index.write_text(
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Cilium dashboards (preview)</title>'
        f"<style>{CSS}</style></head><body><header><h1>Cilium dashboards</h1><p>Rendered from the demo's data "
        f"(Cilium {html.escape(version)}).</p></header><main><ul>{''.join(links)}</ul></main></body></html>\n",
        encoding="utf-8",
    )
    written.append(index)
    return written
