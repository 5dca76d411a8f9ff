"""Shared fixtures: tiny offline models, built once per test session, and the data several test folders use.

Helper modules used by several folders lie beside this file (``colours``, ``eval_layouts``,
``remote_failures``, ``recipe_sections``): pytest puts this folder on ``sys.path``."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

# Nothing in the test suite may reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _cache_root(tmp_path_factory, monkeypatch):
    """Every test's caches under one temporary root (finetune.cache), never the user's ~/.cache/geotune."""
    monkeypatch.setenv("GEOTUNE_CACHE", str(tmp_path_factory.getbasetemp() / "geotune-cache"))


@pytest.fixture(scope="session")
def tiny_internvl(tmp_path_factory):
    """Path of a tiny random-init HF-native InternVL checkpoint (64-px tiles, 16 image tokens)."""
    from finetune.models.tiny import build_tiny_internvl

    return build_tiny_internvl(tmp_path_factory.mktemp("models") / "tiny-internvl", seed=0)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """Path of a tiny random-init CLIPModel checkpoint (2 layers per tower, 32-px images, QuickGELU)."""
    from finetune.models.tiny import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip", seed=0)


@pytest.fixture(scope="session")
def rsitmd_files(tmp_path_factory):
    """An RSITMD-layout folder written without geotune (48 train / 16 val / 16 test images), for library tests."""
    from rsitmd_files import write_rsitmd_files

    return write_rsitmd_files(tmp_path_factory.mktemp("rsitmd"), {"train": 48, "val": 16, "test": 16})


@pytest.fixture(scope="session")
def synth_rsitmd(tmp_path_factory):
    """Folder of SynthRS-RSITMD (48 train / 16 val / 16 test images, RSITMD layout). The app's data: only
    tests/geotune and tests/benchmarks use it (tests/geotune/test_architecture.py checks)."""
    from geotune.synth.retrieval import write_synthrs_rsitmd

    root = tmp_path_factory.mktemp("synthrs")
    write_synthrs_rsitmd(root, seed=0, split_sizes={"train": 48, "val": 16, "test": 16}, image_size=32)
    return root / "SynthRS-RSITMD"


# Shared by the library tests and the app's (tests/geotune): the colour set, stand-in checkpoints, benchmarks.

@pytest.fixture(scope="session")
def tiny_lora(tiny_internvl, tmp_path_factory):
    """A peft LoRA adapter folder over ``tiny_internvl`` (q_proj, v_proj), non-zero B so it changes the weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_internvl)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    out = tmp_path_factory.mktemp("lora") / "final"
    peft_model.save_pretrained(out)
    return out


@pytest.fixture
def colour_data(tmp_path):
    """The tiny learnable colour set (``colours.write_colour_set``) as ``TrainingData``."""
    from colours import write_colour_set

    return write_colour_set(tmp_path / "colours")


@pytest.fixture
def colour_recipe(tiny_internvl, colour_data, tmp_path):
    """Writes ``train.py`` recipes that train the tiny InternVL on ``colour_data`` (saved as LLaVA JSON).

    Returns ``write(**sections) -> Path``: a recipe with the ``model`` and ``data`` sections plus one
    top-level section per keyword, in keyword order, each a YAML flow mapping (``train="{max_steps: 2}"``).
    """
    from finetune.data.formats import write_llava

    root = colour_data.image_roots["colours"]
    write_llava(colour_data.records, root / "train.json")
    common = f"""
model: {{path: {tiny_internvl}, adapter: internvl_hf}}
data:
  datasets:
    - {{name: colours, path: {root}/train.json, format: llava, image_root: {root}}}
  cache_dir: {tmp_path}/cache
"""

    def write(**sections: str) -> Path:
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(common + "".join(f"{key}: {value}\n" for key, value in sections.items()))
        return recipe

    return write


@pytest.fixture(scope="session")
def standin_internvl(tmp_path_factory):
    """A tiny stand-in ``InternVLChatModel`` checkpoint (remote code + auto_map), Qwen2 / Hermes-2."""
    from finetune.models.standins import build_standin_internvl_chat

    return build_standin_internvl_chat(tmp_path_factory.mktemp("standins") / "internvl-chat", seed=0)


@pytest.fixture(scope="session")
def standin_xcomposer2(tmp_path_factory):
    """A tiny stand-in InternLM-XComposer2-VL checkpoint (remote code + auto_map)."""
    from finetune.models.standins import build_standin_xcomposer2

    return build_standin_xcomposer2(tmp_path_factory.mktemp("standins") / "xcomposer2", seed=0)


@pytest.fixture(scope="session")
def standins(tmp_path_factory):
    """Stand-in remote-code checkpoints (``remote_failures``) for the compat and doctor tests:
    ``{"root", "clip", "internlm2", "internvl_chat", "xcomposer2", "internvl_chat_sp", "xcomposer2_sp"}``;
    ``*_sp`` carry InternLM2's sentencepiece-only tokenizer as on the Hub. Tests copy before changing one."""
    from remote_failures import build_standin, build_tiny_clip, remove_cached_modules

    root = tmp_path_factory.mktemp("standins")
    clip = build_tiny_clip(root / "clip-vit-tiny")
    built = {kind: build_standin(kind, root, vision_tower_path=str(clip)) for kind in ("internlm2", "internvl_chat", "xcomposer2")}
    for kind in ("internvl_chat", "xcomposer2"):
        built[f"{kind}_sp"] = build_standin(kind, root, vision_tower_path=str(clip), tokenizer="sentencepiece")
    yield {"root": root, "clip": str(clip), **built}
    # transformers copies each stand-in folder's code into its modules cache: remove ours afterwards.
    remove_cached_modules()


@pytest.fixture(scope="session")
def bench_root(tmp_path_factory):
    """A folder holding UCMerced_LandUse/, AID/, RSVQA_LR/ (text in split files) and GeoChat-Bench/."""
    import eval_layouts

    return eval_layouts.write_all(tmp_path_factory.mktemp("bench"))


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """``free_port()`` -> a loopback port nothing listens on now, for each torchrun launch (``--master_port``):
    a fixed port can meet an earlier launch's socket still in TIME_WAIT."""
    return _unused_port


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000")


class Browser:
    """A selenium driver (``.driver``) of headless Chromium, and :meth:`open` for local HTML files."""

    def __init__(self, driver):
        self.driver = driver

    def open(self, path, fragment: str = "") -> list[dict]:
        """Open a local HTML file (at ``#fragment``), wait until its script says it is ready and every image
        has settled; returns the console errors it logged."""
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get("about:blank")  # a fresh load even when only the #fragment differs
        self.driver.get_log("browser")  # drop what earlier pages logged
        self.driver.get(Path(path).resolve().as_uri() + (f"#{fragment}" if fragment else ""))
        wait = WebDriverWait(self.driver, 60)
        wait.until(lambda d: d.execute_script("return document.body && document.body.dataset.ready === '1'"))
        wait.until(lambda d: d.execute_script("return Array.from(document.images).every(img => img.complete)"))
        return [entry for entry in self.driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]

    def screenshot(self, path, max_height: int = 6000) -> Path:
        """A PNG of the whole page (up to ``max_height`` pixels tall), for a person to look at."""
        height = min(max_height, int(self.run("return document.documentElement.scrollHeight")))
        width = self.driver.get_window_size()["width"]
        self.driver.set_window_size(width, height)
        self.run("window.scrollTo(0, 0)")
        try:
            self.driver.save_screenshot(str(path))
        finally:
            self.driver.set_window_size(width, 1000)
        return Path(path)

    def run(self, script: str, *args):
        return self.driver.execute_script(script, *args)


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    """A :class:`Browser` on the system's headless Chromium, browser console logs kept.

    Fails (never skips) when Chromium, its driver or selenium is missing: the HTML pages are only tested
    in a real browser. Install with ``apt-get install -y chromium chromium-driver`` (``.ci/run`` does).
    Nothing is downloaded: the browser and driver paths are given, and Selenium Manager is told to stay offline.
    """
    import shutil

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(f"headless browser test needs {' and '.join(missing)}: apt-get install -y chromium chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as err:
        pytest.fail(f"headless browser test needs selenium ({err}): pip install -e '.[dev]'")
    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield Browser(driver)
    finally:
        driver.quit()

