"""The Dagster UI in a real browser: Debian's Chromium driven by Playwright, against `dagster-webserver`.

The test prepares a small toy lake and an instance (a temp DAGSTER_HOME, telemetry off, runs launched
at once without a daemon), materialises `toy_world` in-process, then in the browser: opens the asset
graph, materialises `flores` from its page, waits for the run to succeed, and reads the run's metadata
and the `rows_accounted` check result on the asset's page, comparing them with the lake's manifest.

Screenshots go to $MMG4_SCREENSHOTS when set (`make screenshots` writes docs/img/), else to a temp folder.
Skips when Chromium or Playwright is missing (`.ci/run` installs both).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
import yaml

from definitions import make_definitions
from pipeline.lake import Lake, Manifest
from tests import services
from tests.conftest import small_profile

ROOT = Path(__file__).resolve().parent.parent
# headless flags for a machine whose network reaches nothing but localhost (see REFERENCE §9)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
INSTANCE_YAML = """\
telemetry:
  enabled: false
# launch runs at once from the webserver (the default queued coordinator would need the daemon)
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(base: str, query: str) -> dict:
    req = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["data"]


def _runs(base: str) -> list[str]:
    """Status of every run of the instance, newest first (the UI's own GraphQL API)."""
    data = _graphql(base, "{ runsOrError { ... on Runs { results { status } } } }")
    return [r["status"] for r in data["runsOrError"]["results"]]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    chromium = services.chromium()
    tmp = tmp_path_factory.mktemp("ui")
    profile = small_profile(str(tmp / "lake"))
    config = tmp / "profile.yaml"
    config.write_text(yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False))
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    # the upstream of flores, recorded in the same instance the webserver reads
    defs = make_definitions(profile)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey("toy_world")])
        assert result.success

    port = _free_port()
    env = {**os.environ, "MMG4_CONFIG": str(config), "DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    log = open(tmp / "webserver.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-w", "workspace.yaml", "-h", "127.0.0.1",
                             "-p", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own process group: the code server and runs go with it
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, f"dagster-webserver exited: {(tmp / 'webserver.log').read_text()[-3000:]}"
            try:
                urllib.request.urlopen(f"{base}/server_info", timeout=2)
                break
            except OSError:
                assert time.time() < deadline, "dagster-webserver did not answer within 120 s"
                time.sleep(0.5)
        yield {"base": base, "lake": Lake.at(profile.lake_root), "chromium": chromium, "tmp": tmp}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture
def page(webserver):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=webserver["chromium"], args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=30_000)
        # the "Join the Dagster community" modal opens on a first visit: skip it whenever it shows up
        page.add_locator_handler(page.get_by_role("dialog").filter(has_text="Join the Dagster community"),
                                 lambda modal: modal.get_by_role("button", name="Skip").click())
        yield page
        browser.close()


def _screenshot(page, name: str, tmp: Path) -> Path:
    folder = Path(os.environ.get("MMG4_SCREENSHOTS") or tmp)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path))
    from PIL import Image  # a 64-colour palette keeps the README's pictures small

    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)
    return path


def _dismiss_community_modal(page) -> None:
    """A new instance's first page load opens "Join the Dagster community" after a moment: skip it before
    clicking anything (the locator handler of the `page` fixture covers a later appearance)."""
    modal = page.get_by_role("dialog").filter(has_text="Join the Dagster community")
    try:
        modal.wait_for(timeout=15_000)
    except Exception:  # noqa: BLE001 - not shown to this instance: nothing to dismiss
        return
    modal.get_by_role("button", name="Skip").click()
    modal.wait_for(state="hidden")


def _metadata(page, key: str) -> str:
    row = page.locator("tr").filter(has=page.get_by_text(key, exact=True)).first
    return row.locator("td").nth(1).inner_text().strip()


def test_materialise_from_the_ui_and_read_metadata_and_checks(webserver, page):
    base, lake = webserver["base"], webserver["lake"]
    from playwright.sync_api import expect

    # the asset graph: three groups, and materialise-all offered
    page.goto(f"{base}/asset-groups")
    _dismiss_community_modal(page)
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    expect(page.locator("button", has_text="Materialize all")).to_be_visible()
    for group in ("raw", "models", "translation"):
        expect(page.get_by_text(group, exact=True).first).to_be_visible()

    # materialise flores from its page (its upstream toy_world is there already)
    page.goto(f"{base}/assets/flores")
    expect(page.get_by_text("Never materialized")).to_be_visible()
    page.locator("button", has_text="Materialize").first.click()
    # stay on the page until the click has launched a run (leaving it earlier cancels the launch), then
    # wait for that run to end, through the UI's own GraphQL API
    deadline = time.time() + 240
    while len(statuses := _runs(base)) < 2 or statuses[0] not in ("SUCCESS", "FAILURE", "CANCELED"):
        assert time.time() < deadline, f"the run launched from the UI did not end within 240 s: {statuses}"
        page.wait_for_timeout(1000)
    assert statuses == ["SUCCESS", "SUCCESS"], statuses  # the UI's flores run, and toy_world (in-process)
    page.goto(f"{base}/assets/flores?view=events")
    expect(page.get_by_text("Materialized in run")).to_be_visible()

    # its metadata, as the UI shows it, is what the step wrote to the lake's manifest
    extra = Manifest.read(lake.raw("flores")).extra
    expect(page.get_by_text("rows_kept", exact=True)).to_be_visible()
    shown = {k: int(_metadata(page, k)) for k in ("rows_in", "rows_kept", "rows_quarantined")}
    assert shown == {k: extra[k] for k in shown} and shown["rows_kept"] > 0
    assert shown["rows_in"] == shown["rows_kept"] + shown["rows_quarantined"] + int(_metadata(page, "rows_dropped"))
    _screenshot(page, "asset-page.png", webserver["tmp"])

    # the blocking check passed, with its own metadata
    page.goto(f"{base}/assets/flores?view=checks")
    expect(page.get_by_text("rows_accounted").first).to_be_visible()
    expect(page.get_by_text("Passed", exact=True)).to_be_visible()
    assert _metadata(page, "files_not_matching_manifest") == "0"
    assert int(_metadata(page, "rows_kept")) == shown["rows_kept"]

    # the lineage picture for the README: MMMU through translation and back
    page.goto(f"{base}/assets/mmmu_backtranslated?view=lineage&lineageScope=upstream&lineageDepth=3")
    expect(page.get_by_text("translated_mmmu").first).to_be_visible()
    expect(page.get_by_text("nllb_model").first).to_be_visible()
    page.wait_for_timeout(1000)  # the graph animates into place
    _screenshot(page, "asset-graph.png", webserver["tmp"])
