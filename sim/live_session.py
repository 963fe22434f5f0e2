"""A recorded live session (JSONL) for ``liveroom connectors replay``: written from the demo catalog and
its rundown, never by hand.

    python -m sim.live_session --minutes 60 --out sim/sessions/demo-60min.jsonl

The show follows ``knowledge/demo/rundown.yaml`` (the product on screen per segment); viewers enter,
like, follow, send gifts, join the fan club, share, order what is on screen and type danmaku: questions
about the product on screen in its category's words (``host.questions``), naming it by one of its aliases
now and then, store questions (shipping, returns), coupon requests, chatter, a little spam, and a question
burst a few times an hour. As platforms do, about 2 % of messages are sent twice (same ``msg_id``) and a
few arrive a little out of order. Same seed, same file.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from host import questions as Q
from host.rundown import Timeline, parse_rundown

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "knowledge" / "demo"
DEFAULT_OUT = Path(__file__).resolve().parent / "sessions" / "demo-60min.jsonl"
NICKS = ["小鹿", "阿珍", "晴天", "柚子", "大橘", "奶茶", "糖糖", "木木", "七七", "豆豆", "南风", "小满", "阿杰", "可乐"]
GIFTS = [("rose", 1, 10), ("heart", 1, 100), ("rocket", 1, 50000), ("lollipop", 5, 10)]

# events per show second (whole room); comments are split below
RATES = {"enter": 0.35, "like": 0.6, "follow": 0.04, "gift": 0.05, "share": 0.02, "order": 0.05, "fan_club": 0.01}
COMMENTS_PER_S = 0.75
COMMENT_MIX = [("question", 0.46), ("store", 0.1), ("coupon", 0.05), ("chatter", 0.33), ("spam", 0.03), ("greet", 0.03)]


def _pick(rng: random.Random, mix: list[tuple[str, float]]) -> str:
    x, acc = rng.random(), 0.0
    for k, p in mix:
        acc += p
        if x < acc:
            return k
    return mix[-1][0]


def generate(minutes: int = 60, seed: int = 17, merchant: str = "demo", viewers: int = 1200) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    catalog = json.loads((DEMO / "products.json").read_text(encoding="utf-8"))
    products = {p["sku"]: p for p in catalog["products"]}
    rd = parse_rundown((DEMO / "rundown.yaml").read_text(encoding="utf-8"), "rundown.yaml")
    slots = Timeline(rd, 0.0, minutes / 60).slots()
    people = [(f"u{n:05d}", rng.choice(NICKS) + str(rng.randint(1, 999))) for n in range(viewers)]
    regulars = people[: viewers // 5]  # a fifth of the room does most of the typing
    seq = {"n": 0}
    out: list[dict[str, Any]] = []

    def emit(t: float, kind: str, **kw: Any) -> None:
        seq["n"] += 1
        uid, nick = kw.pop("who", None) or rng.choice(regulars if kind == "comment" else people)
        ev = {"t": round(t, 2), "kind": kind, "msg_id": f"{kind[:2]}-{seq['n']:06d}", "user_id": uid, "nickname": nick}
        ev.update(kw)
        out.append(ev)

    def on_screen(t: float) -> dict | None:
        sku = None
        for s in slots:
            if s.start <= t:
                sku = getattr(s.segment, "sku", None) or sku
        return products.get(sku) if sku else None

    bursts = sorted(rng.uniform(120, minutes * 60 - 60) for _ in range(max(1, minutes // 15)))
    for sec in range(minutes * 60):
        p = on_screen(sec)
        for kind, rate in RATES.items():
            n = sum(1 for _ in range(3) if rng.random() < rate / 3)
            for _ in range(n):
                t = sec + rng.random()
                if kind == "gift":
                    g, cnt, value = rng.choice(GIFTS)
                    emit(t, kind, gift=g, count=cnt, amount=value / 100)
                elif kind == "like":
                    emit(t, kind, count=rng.randint(1, 30))
                elif kind == "order" and p is not None:
                    emit(t, kind, sku=p["sku"], amount=float(p.get("price") or 0))
                elif kind != "order":
                    emit(t, kind)
        n_comments = sum(1 for _ in range(3) if rng.random() < COMMENTS_PER_S / 3)
        if any(b <= sec < b + 20 for b in bursts) and p is not None:
            n_comments += 2  # a burst: many viewers ask about one thing, each in their own words
        for _ in range(n_comments):
            t = sec + rng.random()
            what = _pick(rng, COMMENT_MIX)
            if what == "question" and p is not None:
                topic = rng.choice(Q.topics_for(p.get("category"))[:4])
                text = Q.question(rng, topic)
                if rng.random() < 0.3 and p.get("aliases"):
                    text = rng.choice(p["aliases"]) + text
            elif what in ("question", "store"):
                text = Q.question(rng, rng.choice(["shipping", "returns", "authentic", "price", "stock"]))
            elif what == "coupon":
                text = rng.choice(Q.COUPON_REQUESTS)
            elif what == "spam":
                text = rng.choice(Q.SPAM)
            elif what == "greet":
                text = rng.choice(["主播好", "晚上好呀", "来了来了", "大家好"])
            else:
                text = Q.chatter(rng)
            emit(t, "comment", text=text)
    out.sort(key=lambda e: e["t"])
    # platforms re-send (same msg_id) and deliver a little out of order
    resent = [dict(e, t=round(e["t"] + rng.uniform(0.2, 3.0), 2)) for e in out if rng.random() < 0.02]
    out = sorted(out + resent, key=lambda e: e["t"])
    for i in range(1, len(out) - 1):
        if rng.random() < 0.01:
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


def write(path: Path, events: list[dict[str, Any]], minutes: int, merchant: str = "demo") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "session": {
            "title": "暖光 护肤彩妆专场 (generated by sim/live_session.py)",
            "merchant": merchant,
            "minutes": minutes,
            "events": len(events),
        }
    }
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps(header, ensure_ascii=False) + "\n")
        for e in events:
            f.write(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)
    evs = generate(a.minutes, a.seed)
    write(a.out, evs, a.minutes)
    print(f"{a.out}: {len(evs)} events")


if __name__ == "__main__":
    main()
