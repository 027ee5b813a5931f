"""The Prometheus text exposition format (version 0.0.4), written by hand: a handful of
gauges and counters do not justify a client library."""
from __future__ import annotations

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def metric_family(name: str, kind: str, help_text: str, samples) -> list[str]:
    """``# HELP``/``# TYPE`` lines and one line per ``(labels, value)`` sample."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{_labels(labels)} {value}" for labels, value in samples]
    return lines


def render(service_metrics: dict, requests: dict) -> str:
    """Text for ``/metrics`` from ``reports.metrics(ctx)`` and the request counter."""
    lines = []
    lines += metric_family(
        "cincer_examples", "gauge", "Examples per project and status.",
        [({"project": p, "status": s}, n) for p, s, n in sorted(service_metrics["examples"])])
    lines += metric_family(
        "cincer_queries", "gauge", "Review queries per project and status.",
        [({"project": p, "status": s}, n) for p, s, n in sorted(service_metrics["queries"])])
    lines += metric_family(
        "cincer_model_versions", "gauge", "Model versions trained per project.",
        [({"project": p}, n) for p, n in sorted(service_metrics["model_versions"])])
    lines += metric_family(
        "cincer_jobs_total", "counter", "Background jobs run by this process.",
        [({"job": j}, n) for j, n in sorted(service_metrics.get("jobs", {}).items())])
    lines += metric_family(
        "cincer_job_failures_total", "counter", "Background jobs that raised, this process.",
        [({"job": j}, n) for j, n in sorted(service_metrics.get("job_failures", {}).items())])
    lines += metric_family(
        "cincer_http_requests_total", "counter", "HTTP requests served by this process.",
        [({"method": m, "endpoint": e, "status": s}, n)
         for (m, e, s), n in sorted(requests.items())])
    return "\n".join(lines) + "\n"
