"""What ``cincer-service serve`` and ``make run`` print and pass on: every demo project
with its pages, the device line without TensorFlow's noise, HOST/PORT from make."""
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading

import pytest

from api.commands import browsable_host, demo_banner
from cincer_service.service import projects
from cincer_service.spec import ProjectSpec
from tests.support.service import make_context

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOISE = ("oneDNN", "cuda drivers", "cuInit", "absl::InitializeLog", "cpu_feature_guard")


def _project(ctx, name, demo, **extra):
    spec = ProjectSpec.build(name=name, classes=["a", "b"], input_shape=[4], **extra)
    return projects.create_project(ctx, spec, demo=demo)["id"]


def test_the_banner_lists_every_demo_project_with_its_pages(tmp_path):
    ctx = make_context(tmp_path, dispatcher=None)
    first = _project(ctx, "digits-demo", demo=True)
    _project(ctx, "mine", demo=False)
    second = _project(ctx, "utterances-demo", demo=True, input_kind="text")
    lines = demo_banner(ctx, "http://127.0.0.1:8100", seeded=True)
    assert "seeded" in lines[0]
    assert len(lines) == 3                           # the heading, then one line per demo
    assert "digits-demo" in lines[1] and "utterances-demo" in lines[2]
    assert f"http://127.0.0.1:8100/ui/?project={first}" in lines[1]
    assert f"http://127.0.0.1:8100/ui/overview?project={first}" in lines[1]
    assert f"http://127.0.0.1:8100/ui/?project={second}" in lines[2]
    assert "(text)" in lines[2]
    assert not any("mine" in line for line in lines)
    again = demo_banner(ctx, "http://h:1", seeded=False)
    assert "seeded" not in again[0] and len(again) == 3


def test_no_demo_projects_no_banner(tmp_path):
    ctx = make_context(tmp_path, dispatcher=None)
    _project(ctx, "mine", demo=False)
    assert demo_banner(ctx, "http://127.0.0.1:8000", seeded=False) == []


@pytest.mark.parametrize("host, shown", [("0.0.0.0", "127.0.0.1"), ("", "127.0.0.1"),
                                         ("::", "[::1]"), ("::1", "[::1]"),
                                         ("127.0.0.1", "127.0.0.1"), ("example.org", "example.org")])
def test_page_urls_use_an_address_a_browser_can_open(host, shown):
    assert browsable_host(host) == shown


def test_make_run_passes_host_and_port_and_installs_no_extras():
    def dry_run(*args):
        done = subprocess.run(["make", "-n", "-C", str(ROOT), *args], capture_output=True,
                              text=True, timeout=60,
                              env={k: v for k, v in os.environ.items()
                                   if k not in ("HOST", "PORT", "MAKEFLAGS")})
        assert done.returncode == 0, done.stderr
        return done.stdout

    run = dry_run("-B", "run", "PORT=8100", "HOST=0.0.0.0")
    assert re.search(r"cincer-service serve --host '?0\.0\.0\.0'? --port '?8100'?", run), run
    assert "[test" not in run and "bench]" not in run          # serving needs no extras
    default = dry_run("-B", "run")
    assert re.search(r"serve --host '?127\.0\.0\.1'? --port '?8000'?", default), default
    test = dry_run("-B", "test")
    assert "'.[test,bench]'" in test                           # make test adds them


def test_serve_prints_the_device_and_no_tensorflow_noise(tmp_path):
    """The real command on a free port: the device line comes, TensorFlow's lines do not."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TF_", "ABSL_", "CINCER_"))}
    env["CINCER_ADMIN_TOKEN"] = "console-test-token"
    process = subprocess.Popen(
        [sys.executable, "-c", "from cincer_service.cli import main; raise SystemExit(main())",
         "serve", "--port", "0", "--no-demo", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    lines = []
    watchdog = threading.Timer(240, process.kill)     # readline() below cannot time out
    watchdog.start()
    try:
        while True:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("device:"):
                break
    finally:
        watchdog.cancel()
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
    out = "".join(lines)
    device = [line for line in lines if line.startswith("device:")]
    assert device, (out, err)
    assert re.match(r"device: (GPU .+|CPU \(.+\)); background jobs run in this process",
                    device[0]), device[0]
    for noise in NOISE:
        assert noise not in out + err, (noise, err)
