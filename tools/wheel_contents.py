"""The wheel smoke test's last step (`make wheel-check`): run with the fresh venv's Python, outside the checkout.

1. Every file under the checkout's src/adaragct (configs, templates, package data; caches aside) is in the wheel.
2. ``import adaragct`` comes from that venv, not from the checkout.
3. The demo cohort is written from the installed package alone (its configs composed from the installed conf/,
   data=demo), into a temporary folder: what `make demo` builds first, from nothing but the wheel.

Usage: python tools/wheel_contents.py DIST_DIR
"""

from __future__ import annotations

import sys
import tempfile
import time
import zipfile
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def missing_from_wheel(wheel: Path) -> list[str]:
    """Files of src/adaragct that the wheel lacks."""
    src = CHECKOUT / "src"
    wanted = {
        p.relative_to(src).as_posix()
        for p in (src / "adaragct").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    return sorted(wanted - set(zipfile.ZipFile(wheel).namelist()))


def write_cohort(root: Path) -> list[str]:
    """The demo cohort written under ``root`` by the installed package; returns the files written."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import adaragct
    from adaragct.synthetic.writer import write_demo

    with initialize_config_dir(config_dir=str(adaragct.CONF_DIR), version_base="1.3"):
        cfg = compose("prepare", overrides=["data=demo", f"paths.root_dir={root}"])
    write_demo(OmegaConf.to_container(cfg.data, resolve=True))
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def main(argv: list[str]) -> int:
    wheels = sorted(Path(argv[1]).glob("adaragct-*.whl"))
    if len(wheels) != 1:
        print(f"error: expected one adaragct wheel in {argv[1]}, found {len(wheels)}", file=sys.stderr)
        return 1
    missing = missing_from_wheel(wheels[0])
    if missing:
        print(
            f"error: {wheels[0].name} lacks {len(missing)} file(s) of src/adaragct: {missing[:10]}",
            file=sys.stderr,
        )
        return 1
    print(f"{wheels[0].name}: every file of src/adaragct is inside")
    import adaragct

    where = Path(adaragct.__file__).resolve()
    if (CHECKOUT / "src") in where.parents:
        print(f"error: adaragct was imported from the checkout ({where}), not the wheel", file=sys.stderr)
        return 1
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        files = write_cohort(Path(tmp))
    if not any(f.endswith("cohort.json") for f in files) or not any(f.endswith(".npz") for f in files):
        print(f"error: the demo cohort was not written: {files}", file=sys.stderr)
        return 1
    print(
        f"demo cohort from the installed package ({where.parent}): {len(files)} files in {time.monotonic() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
