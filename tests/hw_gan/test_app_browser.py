"""`hwgan app` end to end in a real browser: headless Chromium from Debian's packages
(`chromium`, `chromium-driver`; .ci/run installs them) driven by Selenium, against the app run as
`python -m hw_gan.cli app` with tiny models (tests/hw_gan/app_models.py).

Run 1: download the sheets, upload a photographed filled-in sheet (with a picture of no sheet
and a file that is not an image beside it), leave one glyph out, make a quick hand, type and see
the preview change, download the PDF and check its pages and glyphs, and every page as PNG in
one .zip. Run 2: a better hand's job
survives a reload, is cancelled (the hands stay), then runs to the end.

Screenshots of each step go to $HWGAN_SCREENSHOTS when it is set (docs/img/ holds a set)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = os.environ.get("HWGAN_SCREENSHOTS")
# HWGAN_ZOOM=2: the page as a browser zoomed to 200 % shows it (half the CSS pixels across, each
# drawn 2 x 2), for the accessibility screenshots in docs/img/app/zoom-200.
ZOOM = float(os.environ.get("HWGAN_ZOOM", "1"))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from tests.hw_gan.app_models import start_app, stylegan_export, style_cgan_base

    root = tmp_path_factory.mktemp("app")
    export, base = stylegan_export(root), style_cgan_base(root)
    data = root / "data"
    try:
        proc, url = start_app(export, data, root / "app.log", "--base", str(base),
                              "--style_steps", "20", "--adapt_steps", "150",
                              "--adapt_finetune_steps", "30")
    except RuntimeError as e:
        pytest.fail(str(e))
    yield {"url": url, "data": data, "root": root, "proc": proc}
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def browser(app):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download a browser
    downloads = app["root"] / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={round(1200 / ZOOM)},{round(1600 / ZOOM)}",
                f"--force-device-scale-factor={ZOOM:g}", "--lang=en-GB"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.implicitly_wait(0)
    driver.downloads = downloads
    yield driver
    driver.quit()


def _wait(cond, timeout=60.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        try:
            value = cond()
        except Exception:  # noqa: BLE001 - an element not there yet
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _shot(driver, name: str, element_id: str = None) -> None:
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    if element_id:
        driver.execute_script("document.getElementById(arguments[0]).scrollIntoView()",
                              element_id)
    driver.save_screenshot(str(Path(SHOTS) / f"{name}.png"))


def _download(driver, name: str, timeout=60.0) -> bytes:
    path = driver.downloads / name
    _wait(lambda: path.is_file() and path.stat().st_size > 0 and
          not (driver.downloads / (name + ".crdownload")).exists(), timeout, f"download {name}")
    return path.read_bytes()


def _pdf_pages_and_glyphs(pdf: bytes) -> tuple[int, int]:
    """Pages, and glyphs drawn (each glyph is one even-odd fill, `f*`, hw_gan.render.output)."""
    pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
    glyphs = 0
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            stream = zlib.decompress(stream)
        except zlib.error:
            pass
        glyphs += sum(line.strip() == b"f*" for line in stream.splitlines())
    return pages, glyphs


def _by(driver, css):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def _status(driver) -> str:
    return driver.find_element("id", "status").text


def test_sheets_to_letter_in_a_browser(app, browser, tmp_path):
    from hw_gan.render.output import pdf_glyph_spans
    from tests.hw_gan.app_models import sheet_photo

    d = browser
    d.get(app["url"] + "/")
    _wait(lambda: d.execute_script("return document.body.dataset.ready") == "1", 60, "page")
    _shot(d, "1-start")
    # 1. Sheets: the PDF comes from the page's button.
    d.find_element("id", "get-sheets").click()
    assert _download(d, "handwriting-sheets.pdf").startswith(b"%PDF")
    _shot(d, "2-sheets", "sheets")
    # 2. Upload: a photographed filled-in sheet, a picture of no sheet, a file that is no image.
    layout = json.loads((app["data"] / "sheets" / "layout.json").read_text())
    photo = tmp_path / "kitchen table photo.jpg"
    photo.write_bytes(sheet_photo(layout, 0, seed=1))
    import cv2
    import numpy as np

    nosheet = tmp_path / "cat.png"
    cv2.imwrite(str(nosheet), np.random.default_rng(0).integers(0, 255, (400, 300, 3),
                                                                  np.uint8))
    notimage = tmp_path / "letter.jpg"
    notimage.write_text("this is text, not a picture")
    d.find_element("id", "files").send_keys("\n".join(str(p) for p in (photo, nosheet,
                                                                        notimage)))
    _wait(lambda: len(_by(d, "#upload-list li")) == 3, 60, "upload results")
    items = [li.text for li in _by(d, "#upload-list li")]
    assert any(t.startswith("Page 1 (kitchen table photo.jpg): sheet found") for t in items)
    assert any(t.startswith("cat.png: not used. no sheet found") for t in items), items
    assert any(t.startswith("letter.jpg: not used. not an image") for t in items), items
    _shot(d, "3-upload", "upload")
    # 3. Review: leave the first glyph out.
    used = lambda: int(re.match(r"(\d+)", d.find_element("id", "review-summary").text).group(1))  # noqa: E731
    before = used()
    first = _by(d, ".glyph[data-id]")[0]
    gid = first.get_attribute("data-id")
    first.click()
    _wait(lambda: _by(d, f'.glyph[data-id="{gid}"]')[0].get_attribute("aria-pressed") == "true",
          30, "glyph left out")
    assert used() == before - 1
    _shot(d, "4-review", "review")
    # 4. A quick hand.
    name = d.find_element("id", "hand-name")
    name.clear()
    name.send_keys("Grandma")
    d.find_element("id", "make-fast").click()
    _wait(lambda: "is ready" in _status(d), 120, "quick hand")
    assert [li.text.split("\n")[0] for li in _by(d, "#hands .hand-name")] == ["Grandma"]
    _shot(d, "5-hand", "hand")
    # 5. Type, and see the preview change.
    text = d.find_element("id", "text")
    text.send_keys("abc dea")
    _wait(lambda: d.find_element("id", "preview").get_attribute("data-glyphs") == "6", 30,
          "first preview")
    v1 = d.find_element("id", "preview").get_attribute("data-version")
    text.send_keys(" bad cab")
    _wait(lambda: d.find_element("id", "preview").get_attribute("data-glyphs") == "12", 30,
          "preview after typing")
    assert int(d.find_element("id", "preview").get_attribute("data-version")) > int(v1)
    _shot(d, "6-write", "write")
    # A letter of several A5 pages, downloaded as PDF: its pages and glyphs.
    long_text = " ".join(["ab cd ea"] * 500)  # 4,499 characters, under 5,000
    from selenium.webdriver.support.select import Select

    Select(d.find_element("id", "page")).select_by_value("a5")
    d.execute_script("const t = document.getElementById('text'); t.value = arguments[0];"
                     "t.dispatchEvent(new Event('input'));", long_text)
    n_glyphs = sum(not c.isspace() for c in long_text)
    _wait(lambda: d.find_element("id", "preview").get_attribute("data-glyphs") == str(n_glyphs),
          60, "long preview")
    shown = int(re.fullmatch(r"Page 1 of (\d+)", d.find_element("id", "page-of").text).group(1))
    assert shown >= 2
    d.find_element("id", "dl-pdf").click()
    pdf = _download(d, "letter.pdf")
    pages, glyphs = _pdf_pages_and_glyphs(pdf)
    # One fill per glyph with ink (a 4-step model's style may draw none); each page's content
    # names the glyphs it holds (blank ones included): together, every glyph of the text.
    spans = pdf_glyph_spans(pdf)
    assert pages == shown == len(spans) and glyphs <= n_glyphs
    assert [a for a, _, _ in spans] == [0] + [b + 1 for _, b, _ in spans[:-1]]
    assert sum(n for _, _, n in spans) == spans[-1][1] + 1 == n_glyphs
    # Every page as pictures: one .zip, a PNG per page.
    import io
    import zipfile

    d.find_element("id", "dl-png-all").click()
    with zipfile.ZipFile(io.BytesIO(_download(d, "letter-png.zip"))) as z:
        assert z.namelist() == [f"page-{k}.png" for k in range(1, shown + 1)]
        for name in z.namelist():
            png = cv2.imdecode(np.frombuffer(z.read(name), np.uint8), cv2.IMREAD_GRAYSCALE)
            assert png is not None and png.shape[0] > png.shape[1] > 0, name
    _shot(d, "7-download", "preview")
    # Text the hand lacks follows the page's choice: "stop and tell me" names the letters.
    Select(d.find_element("id", "missing-mode")).select_by_value("error")
    d.execute_script("const t = document.getElementById('text'); t.value = 'abc xyz';"
                     "t.dispatchEvent(new Event('input'));")
    _wait(lambda: "does not have these letters: x y z" in
          d.find_element("id", "preview-note").text, 30, "missing letters named")


def test_better_hand_job_survives_reload_cancels_and_finishes(app, browser):
    d = browser
    d.get(app["url"] + "/")
    _wait(lambda: d.execute_script("return document.body.dataset.ready") == "1", 60, "page")
    hands_before = [e.text for e in _by(d, "#hands .hand-name")]
    d.find_element("id", "make-better").click()
    _wait(lambda: not d.find_element("id", "job").get_attribute("hidden"), 30, "job shown")
    d.refresh()  # the job goes on, and the page finds it again
    _wait(lambda: d.execute_script("return document.body.dataset.ready") == "1", 60, "page")
    _wait(lambda: d.find_element("id", "job-cancel").is_displayed(), 30, "job after reload")
    _shot(d, "8-job", "hand")
    d.find_element("id", "job-cancel").click()
    _wait(lambda: "Cancelled" in d.find_element("id", "job-text").text, 60, "cancelled")
    assert [e.text for e in _by(d, "#hands .hand-name")] == hands_before
    d.find_element("id", "make-better").click()
    _wait(lambda: "is ready" in _status(d), 240, "better hand")
    names = [e.text for e in _by(d, "#hands .hand-name")]
    assert names == hands_before + ["My hand"]
    _shot(d, "9-better-done", "hand")
    # Peak memory of the server so far (the adaptation included), for the record.
    status = Path(f"/proc/{app['proc'].pid}/status")
    if status.is_file():
        peak = re.search(r"VmHWM:\s+(\d+) kB", status.read_text())
        print(f"server peak RSS {int(peak.group(1)) / 1024:.0f} MB")
