"""The pictures in the docs: every one the pages show exists, and docs/figures.py draws today what is checked in
(a picture never goes stale). Graphviz's pictures compare as text, matplotlib's as pixels."""
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def referenced():
    """Every docs/figures/NAME a page links to, as (page, name)."""
    return [(page.name, name) for page in PAGES for name in re.findall(r"figures/([\w.-]+\.(?:png|svg))",
                                                                          page.read_text())]


def test_every_figure_a_page_shows_is_checked_in_and_small():
    shown = referenced()
    assert len({name for _, name in shown}) >= 10
    for page, name in shown:
        assert (FIGURES / name).is_file(), f"{page} shows figures/{name}, which is not in docs/figures"
    sizes = [path.stat().st_size for path in FIGURES.iterdir()]
    assert max(sizes) < 150_000 and sum(sizes) < 1_000_000


FROM_A_TRAINING_RUN = {"loss-curve.png", "compare.png", "attention.png", "attention-bpe.png", "logit-lens.png"}


def blocks(image, size=8):
    """The image's colours averaged over size x size blocks."""
    h, w = image.shape[0] // size * size, image.shape[1] // size * size
    return image[:h, :w, :3].reshape(h // size, size, w // size, size, 3).mean(axis=(1, 3))


def svg_text(path):
    """An SVG's text without Graphviz's comments (they name its version)."""
    return re.sub(r"<!--.*?-->", "", path.read_text(), flags=re.S)


def test_the_script_draws_the_pictures_that_are_checked_in(tmp_path, matplotlib):
    if shutil.which("dot") is None:
        pytest.skip("needs Graphviz's dot: apt-get install graphviz (or brew install graphviz)")
    import matplotlib.image
    import sys
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import figures
    finally:
        sys.path.remove(str(ROOT / "docs"))
    drawn = figures.draw_all(tmp_path)
    assert sorted(path.name for path in drawn) == sorted(path.name for path in FIGURES.iterdir())
    assert {name for _, name in referenced()} == {path.name for path in drawn}   # each drawn one is shown
    for path in drawn:
        stale = f"docs/figures/{path.name} is not what docs/figures.py draws now: run python docs/figures.py"
        if path.suffix == ".svg":
            assert svg_text(path) == svg_text(FIGURES / path.name), stale
        else:
            new, old = matplotlib.image.imread(path), matplotlib.image.imread(FIGURES / path.name)
            assert new.shape == old.shape, stale
            if path.name in FROM_A_TRAINING_RUN:
                # 300 float32 steps amplify the last bit of each matmul, which depends on the machine's BLAS kernels
                # (another rounding moves a curve or an attention weight visibly): the same picture, not the same
                # pixels. 8x8 blocks that differ: up to a quarter under other roundings, most of them for another
                # picture.
                assert (np.abs(blocks(new) - blocks(old)).max(axis=-1) > 0.05).mean() < 0.4, stale
            else:
                differs = np.abs(new - old).max(axis=-1) > 0.1
                assert differs.mean() < 0.005, stale
