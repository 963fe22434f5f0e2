"""Generate the demo catalog's product pictures, deterministically.

    python scripts/make_demo_images.py [--products knowledge/demo/products.json] [--out knowledge/demo/images]

One 320x320 "main image" per product (``<sku>.png``) and, for products with two or more colour
variants, one per variant (``<sku>__<variant>.png``). The same catalog gives the same files; the
pictures are synthetic packaging-like compositions (shape, colours, pattern, the product's name in
Chinese, a barcode), not photos. Requires a CJK font (scripts/install_system_deps.sh installs one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.images import product_images_plan, render_product_shot  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=Path, default=ROOT / "knowledge" / "demo" / "products.json")
    ap.add_argument("--out", type=Path, default=ROOT / "knowledge" / "demo" / "images")
    ap.add_argument("--size", type=int, default=320)
    args = ap.parse_args(argv)
    data = json.loads(args.products.read_text(encoding="utf-8"))
    products = data["products"] if isinstance(data, dict) else data
    args.out.mkdir(parents=True, exist_ok=True)
    wanted: set[str] = set()
    total = 0
    for p in products:
        for variant, fname in product_images_plan(p):
            img = render_product_shot(p, variant, size=args.size)
            path = args.out / fname
            img.save(path, format="PNG", optimize=True)
            wanted.add(fname)
            total += path.stat().st_size
    for stale in args.out.glob("*.png"):
        if stale.name not in wanted:
            stale.unlink()
    print(f"{len(wanted)} images, {total / 1024:.0f} KiB in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
