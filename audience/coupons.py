"""Coupon campaigns, issuance and redemption over an append-only ledger (mixed into AudienceService).

Issuing is one database transaction:

1. replay check: a coupon already issued under (campaign, idempotency key) is returned as is;
2. campaign state and the viewer's eligibility (tier / interest tags / membership, from the profile);
3. per-viewer limit: ``INSERT .. ON CONFLICT DO UPDATE SET n = n + 1 WHERE n < limit RETURNING n``;
4. budget: ``UPDATE campaign SET issued_count = issued_count + 1, .. WHERE issued_count < budget_count
   AND issued_value + face <= budget_money`` (a CHECK constraint backs this up);
5. the coupon row (UNIQUE (merchant, campaign, idempotency key)) and its ledger row.

On SQLite the transaction starts with ``BEGIN IMMEDIATE``, so issuers in every thread and process
run one at a time; on PostgreSQL the conditional UPDATE takes the campaign's row lock, a
transaction-scoped advisory lock serializes replays of one key, and the unique constraint catches
anything else. A process killed anywhere inside leaves no trace: the database rolls it back.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from audience import models as t
from audience.config import MERCHANT_RE, check_merchant
from audience.db import insert_for, is_sqlite, read_tx
from audience.schemas import Campaign, CampaignEdit, CampaignIn, RedeemIn, RedeemResult
from core.errors import BadRequest, Conflict
from core.timeutil import iso
from tools.contracts import CouponOffer, CouponResult, ProfileView

log = logging.getLogger(__name__)


class CampaignExists(Conflict, ValueError):
    code = "campaign_exists"


class _Abort(Exception):
    """Leave the transaction (rolled back) with this result."""

    def __init__(self, result):
        self.result = result


def _yuan(fen: int | None) -> float | None:
    return None if fen is None else fen / 100.0


def _fmt(x: float) -> str:
    return f"{x:g}"


def describe(offer: CouponOffer) -> str:
    if offer.kind == "amount":
        head = (
            f"满{_fmt(offer.threshold)}减{_fmt(offer.amount or 0)}"
            if offer.threshold
            else f"无门槛减{_fmt(offer.amount or 0)}元"
        )
    else:
        zhe = _fmt(round((offer.discount or 1) * 10, 2))
        head = f"满{_fmt(offer.threshold)}打{zhe}折" if offer.threshold else f"{zhe}折"
    return head


def _message(code: str, offer: CouponOffer | None = None, *, limit: int = 1, reason: str = "") -> str:
    title = f"「{offer.title}」" if offer else "这张券"
    if code == "issued":
        until = f"，有效期至{offer.valid_until[:16].replace('T', ' ')}" if offer and offer.valid_until else ""
        desc = describe(offer)
        what = title if desc in offer.title else f"{title}（{desc}）"
        return f"已为您发放{what}{until}，下单时就能用哦～"
    if code == "already_issued":
        return f"{title}已经在您的卡包里啦，下单时直接使用就好～"
    if code == "limit_reached":
        return f"您已经领过{title}啦（每人限领{limit}张），下单时记得使用哦～"
    if code == "budget_exhausted":
        return f"不好意思，{title}已经被抢光啦，关注直播间，稍后还有福利～"
    if code == "expired":
        return f"抱歉，{title}的活动已经结束啦，可以看看直播间正在进行的其他福利～"
    if code == "unknown_campaign":
        return "抱歉，没有找到这张券，可能活动已经结束了，可以看看直播间的其他福利～"
    if code == "not_eligible":
        return {
            "unknown_viewer": "抱歉，暂时没有查到您的观看记录，刷新直播间后再试试哦～",
            "not_started": f"{title}还没开始领取哦，请稍等一下～",
            "paused": f"{title}暂时停止发放啦，请留意主播的通知～",
        }.get(reason, f"抱歉，{title}暂时不适用于您的账号，可以看看直播间的其他福利哦～")
    return "系统有点忙，请稍后再试一下～"


def _result(code: str, offer: CouponOffer | None = None, coupon_id: str | None = None, **kw) -> CouponResult:
    return CouponResult(
        ok=code in ("issued", "already_issued"),
        code=code,
        message=_message(code, offer, **kw),
        coupon_id=coupon_id,
        offer=offer,
    )


def _face_fen(camp) -> int:
    return int(camp.amount_fen or 0) if camp.kind == "amount" else int(camp.max_off_fen or 0)


def _ineligible(camp, profile: ProfileView) -> str | None:
    tiers = json.loads(camp.eligible_tiers or "[]")
    if tiers and profile.tier not in tiers:
        return "tier"
    tags = json.loads(camp.eligible_tags or "[]")
    if tags and not {x.tag for x in profile.interest_tags} & set(tags):
        return "tags"
    if camp.members_only and not profile.member:
        return "members_only"
    return None


class CouponMixin:
    # provided by AudienceService: engine, clock, _fire, _profile, rules

    # --- campaigns ---------------------------------------------------------------------------
    def create_campaign(self, merchant: str, spec: CampaignIn | dict) -> Campaign:
        """Create a campaign; re-creating an identical one is a no-op, a different one with the same id raises."""
        check_merchant(merchant)
        spec = spec if isinstance(spec, CampaignIn) else CampaignIn.model_validate(spec)
        cid = spec.campaign_id or "C" + uuid.uuid4().hex[:12]
        now = self.clock()
        row = {
            "merchant": merchant,
            "campaign_id": cid,
            "title": spec.title,
            "kind": spec.kind,
            "amount_fen": None if spec.amount is None else round(spec.amount * 100),
            "discount": spec.discount,
            "max_off_fen": None if spec.max_off is None else round(spec.max_off * 100),
            "threshold_fen": round(spec.threshold * 100),
            "budget_count": spec.budget_count,
            "budget_money_fen": None if spec.budget_money is None else round(spec.budget_money * 100),
            "per_viewer_limit": spec.per_viewer_limit,
            "eligible_tiers": json.dumps(spec.eligible_tiers, ensure_ascii=False),
            "eligible_tags": json.dumps(spec.eligible_tags, ensure_ascii=False),
            "skus": json.dumps(spec.skus, ensure_ascii=False),
            "members_only": spec.members_only,
            "valid_from": spec.valid_from.timestamp() if spec.valid_from else None,
            "valid_until": spec.valid_until.timestamp() if spec.valid_until else None,
            "stackable": spec.stackable,
            "status": spec.status,
            "issued_count": 0,
            "issued_value_fen": 0,
            "created_at": now,
            "updated_at": now,
        }
        c = t.campaigns
        with self._write() as conn:
            old = conn.execute(select(c).where(c.c.merchant == merchant, c.c.campaign_id == cid)).first()
            if old is not None:
                same = all(
                    getattr(old, k) == v
                    for k, v in row.items()
                    if k not in ("created_at", "updated_at", "issued_count", "issued_value_fen")
                )
                if not same:
                    raise CampaignExists(f"campaign {cid!r} already exists with different settings")
            else:
                conn.execute(insert(c), [row])
        return self.get_campaign(merchant, cid)

    def _campaign_out(self, merchant: str, r) -> Campaign:
        tz = self.rules(merchant).timezone
        return Campaign(
            campaign_id=r.campaign_id,
            title=r.title,
            kind=r.kind,
            amount=_yuan(r.amount_fen),
            discount=r.discount,
            max_off=_yuan(r.max_off_fen),
            threshold=_yuan(r.threshold_fen),
            budget_count=r.budget_count,
            budget_money=_yuan(r.budget_money_fen),
            per_viewer_limit=r.per_viewer_limit,
            eligible_tiers=json.loads(r.eligible_tiers),
            eligible_tags=json.loads(r.eligible_tags),
            skus=json.loads(r.skus),
            members_only=bool(r.members_only),
            valid_from=iso(r.valid_from, tz),
            valid_until=iso(r.valid_until, tz),
            stackable=bool(r.stackable),
            status=r.status,
            issued_count=r.issued_count,
            issued_value=r.issued_value_fen / 100.0,
            remaining=max(0, r.budget_count - r.issued_count),
        )

    def get_campaign(self, merchant: str, campaign_id: str) -> Campaign | None:
        check_merchant(merchant)
        c = t.campaigns
        with read_tx(self.engine) as conn:
            r = conn.execute(select(c).where(c.c.merchant == merchant, c.c.campaign_id == campaign_id)).first()
        return None if r is None else self._campaign_out(merchant, r)

    def list_campaigns(self, merchant: str) -> list[Campaign]:
        check_merchant(merchant)
        c = t.campaigns
        with read_tx(self.engine) as conn:
            rows = conn.execute(select(c).where(c.c.merchant == merchant).order_by(c.c.created_at, c.c.campaign_id))
            rows = list(rows)
        return [self._campaign_out(merchant, r) for r in rows]

    def set_campaign_status(self, merchant: str, campaign_id: str, status: str) -> Campaign | None:
        if status not in ("active", "paused", "ended"):
            raise ValueError("status must be active, paused or ended")
        c = t.campaigns
        with self._write() as conn:
            conn.execute(
                update(c)
                .where(c.c.merchant == merchant, c.c.campaign_id == campaign_id)
                .values(status=status, updated_at=self.clock())
            )
        return self.get_campaign(merchant, campaign_id)

    def edit_campaign(self, merchant: str, campaign_id: str, edit: CampaignEdit | dict) -> Campaign | None:
        """Change a campaign's budget, limits, eligibility or dates in one transaction; a budget below what
        was already issued is refused (the CHECK constraints back this up). None: no such campaign."""
        check_merchant(merchant)
        edit = edit if isinstance(edit, CampaignEdit) else CampaignEdit.model_validate(edit)
        c = t.campaigns
        with self._write() as conn:
            r = conn.execute(select(c).where(c.c.merchant == merchant, c.c.campaign_id == campaign_id)).first()
            if r is None:
                return None
            vals: dict[str, Any] = {}
            for k in ("title", "budget_count", "per_viewer_limit", "members_only", "stackable"):
                if getattr(edit, k) is not None:
                    vals[k] = getattr(edit, k)
            for k in ("eligible_tiers", "eligible_tags"):
                if getattr(edit, k) is not None:
                    vals[k] = json.dumps(getattr(edit, k), ensure_ascii=False)
            if edit.budget_money is not None:
                vals["budget_money_fen"] = round(edit.budget_money * 100)
            for k in ("valid_from", "valid_until"):
                if getattr(edit, k) is not None:
                    vals[k] = getattr(edit, k).timestamp()
            if vals.get("budget_count", r.budget_count) < r.issued_count:
                raise BadRequest(f"budget_count cannot go below the {r.issued_count} coupons already issued")
            money = vals.get("budget_money_fen", r.budget_money_fen)
            if money is not None and money < max(r.issued_value_fen, _face_fen(r)):
                raise BadRequest("budget_money cannot go below what was already issued or one coupon's face value")
            start, end = vals.get("valid_from", r.valid_from), vals.get("valid_until", r.valid_until)
            if start is not None and end is not None and end <= start:
                raise BadRequest("valid_until must be after valid_from")
            if vals:
                conn.execute(
                    update(c)
                    .where(c.c.merchant == merchant, c.c.campaign_id == campaign_id)
                    .values(**vals, updated_at=self.clock())
                )
        return self.get_campaign(merchant, campaign_id)

    def campaign_timeline(self, merchant: str, campaign_id: str, buckets: int = 60) -> dict[str, Any] | None:
        """The burn-down from the ledger: per time bucket, coupons issued and used so far and the budget
        left. None: no such campaign."""
        check_merchant(merchant)
        c, lg = t.campaigns, t.ledger
        with read_tx(self.engine) as conn:
            camp = conn.execute(select(c).where(c.c.merchant == merchant, c.c.campaign_id == campaign_id)).first()
            if camp is None:
                return None
            rows = conn.execute(
                select(lg.c.op, lg.c.at)
                .where(lg.c.merchant == merchant, lg.c.campaign_id == campaign_id)
                .order_by(lg.c.at)
            ).all()
        start = min([camp.created_at] + [r.at for r in rows])
        end = max([self.clock()] + [r.at for r in rows])
        step = max((end - start) / max(buckets, 1), 1.0)
        points: list[dict[str, Any]] = []
        issued = used = i = 0
        for b in range(buckets + 1):
            edge = start + b * step
            while i < len(rows) and rows[i].at <= edge:
                issued += rows[i].op == "issue"
                used += rows[i].op == "redeem"
                i += 1
            points.append({"at": edge, "issued": issued, "used": used, "remaining": camp.budget_count - issued})
        return {
            "campaign_id": campaign_id,
            "budget": camp.budget_count,
            "issued": camp.issued_count,
            "used": sum(r.op == "redeem" for r in rows),
            "points": points,
        }

    def _offer(self, camp, tz: str) -> CouponOffer:
        return CouponOffer(
            campaign_id=camp.campaign_id,
            title=camp.title,
            kind=camp.kind,
            amount=_yuan(camp.amount_fen),
            discount=camp.discount,
            threshold=_yuan(camp.threshold_fen) or 0.0,
            skus=json.loads(camp.skus),
            valid_until=iso(camp.valid_until, tz),
        )

    # --- CouponLedger --------------------------------------------------------------------------
    def eligible_offers(self, merchant: str, viewer_id: str, sku: str | None = None) -> list[CouponOffer]:
        """Campaigns this viewer may be issued now (eligible, running, budget left, under their limit)."""
        if not MERCHANT_RE.match(merchant or ""):
            return []
        now = self.clock()
        c = t.campaigns
        with read_tx(self.engine) as conn:
            profile = self._profile(conn, merchant, viewer_id, now)
            if profile is None:
                return []
            camps = list(conn.execute(select(c).where(c.c.merchant == merchant, c.c.status == "active")))
            held = dict(
                conn.execute(
                    select(t.claims.c.campaign_id, t.claims.c.n).where(
                        t.claims.c.merchant == merchant, t.claims.c.viewer_id == viewer_id
                    )
                ).all()
            )
        tz = self.rules(merchant).timezone
        offers = []
        for camp in camps:
            if camp.valid_from is not None and now < camp.valid_from:
                continue
            if camp.valid_until is not None and now > camp.valid_until:
                continue
            face = _face_fen(camp)
            if camp.issued_count >= camp.budget_count or (
                camp.budget_money_fen is not None and camp.issued_value_fen + face > camp.budget_money_fen
            ):
                continue
            if held.get(camp.campaign_id, 0) >= camp.per_viewer_limit:
                continue
            if _ineligible(camp, profile):
                continue
            skus = json.loads(camp.skus)
            if sku and skus and sku not in skus:
                continue
            offers.append((face, camp))
        offers.sort(key=lambda fc: (-fc[0], fc[1].campaign_id))
        return [self._offer(camp, tz) for _, camp in offers]

    def issue(self, merchant: str, viewer_id: str, campaign_id: str, idempotency_key: str) -> CouponResult:
        """Issue one coupon, or say politely why not. Same idempotency key → same coupon, always."""
        if not MERCHANT_RE.match(merchant or "") or not campaign_id or len(campaign_id) > 64:
            return _result("unknown_campaign")
        if not viewer_id or len(viewer_id) > 128 or not idempotency_key or len(idempotency_key) > 128:
            return _result("error")
        try:
            early = self._issue_precheck(merchant, viewer_id, campaign_id, idempotency_key, self.clock())
        except Exception:
            log.exception("coupon issue precheck failed")
            early = None
        if early is not None:
            return early
        for attempt in range(5):
            now = self.clock()
            try:
                with self._write() as conn:
                    return self._issue_tx(conn, merchant, viewer_id, campaign_id, idempotency_key, now)
            except _Abort as a:  # rolled back
                return a.result
            except IntegrityError:  # a concurrent issue with the same key won: the retry returns its coupon
                continue
            except OperationalError as e:  # lock timeout / deadlock / lost connection
                log.warning("coupon issue attempt %d failed: %s", attempt + 1, e)
                time.sleep(0.05 * (attempt + 1))
            except Exception:
                log.exception("coupon issue failed")
                return _result("error")
        return _result("error")

    def _issue_precheck(self, merchant: str, viewer_id: str, cid: str, key: str, now: float) -> CouponResult | None:
        """Answers that can only get *more* true (a replayed key, a viewer at their limit, a spent budget,
        an ended campaign), read without the write lock so a flash crowd after the last coupon is cheap.
        Anything else goes through the locked transaction, which re-checks everything."""
        c, cp = t.campaigns, t.coupons
        with read_tx(self.engine) as conn:
            camp = conn.execute(select(c).where(c.c.merchant == merchant, c.c.campaign_id == cid)).first()
            if camp is None:
                return _result("unknown_campaign")
            prior = conn.execute(
                select(cp.c.coupon_id, cp.c.viewer_id).where(
                    cp.c.merchant == merchant, cp.c.campaign_id == cid, cp.c.idempotency_key == key
                )
            ).first()
            held = (
                conn.execute(
                    select(t.claims.c.n).where(
                        t.claims.c.merchant == merchant,
                        t.claims.c.campaign_id == cid,
                        t.claims.c.viewer_id == viewer_id,
                    )
                ).scalar()
                or 0
            )
        offer = self._offer(camp, self.rules(merchant).timezone)
        if prior is not None:
            return _result("already_issued", offer, prior.coupon_id) if prior.viewer_id == viewer_id else None
        if camp.status == "ended" or (camp.valid_until is not None and now > camp.valid_until):
            return _result("expired", offer)
        if held >= camp.per_viewer_limit:
            return _result("limit_reached", offer, limit=camp.per_viewer_limit)
        face = _face_fen(camp)
        if camp.issued_count >= camp.budget_count or (
            camp.budget_money_fen is not None and camp.issued_value_fen + face > camp.budget_money_fen
        ):
            return _result("budget_exhausted", offer)
        return None

    def _issue_tx(self, conn, merchant: str, viewer_id: str, cid: str, key: str, now: float) -> CouponResult:
        c, cp = t.campaigns, t.coupons
        if not is_sqlite(conn):  # replays of one key queue here, then see the first one's coupon
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"{merchant}\x1f{cid}\x1f{key}", 0))))
        camp = conn.execute(select(c).where(c.c.merchant == merchant, c.c.campaign_id == cid)).first()
        if camp is None:
            return _result("unknown_campaign")
        offer = self._offer(camp, self.rules(merchant).timezone)

        def replay() -> CouponResult | None:
            prior = conn.execute(
                select(cp.c.coupon_id, cp.c.viewer_id).where(
                    cp.c.merchant == merchant, cp.c.campaign_id == cid, cp.c.idempotency_key == key
                )
            ).first()
            if prior is None:
                return None
            if prior.viewer_id != viewer_id:
                log.warning("idempotency key %r of campaign %s reused for another viewer", key, cid)
                return _result("error")
            return _result("already_issued", offer, prior.coupon_id)

        prior = replay()
        if prior is not None:
            return prior
        if camp.status == "ended" or (camp.valid_until is not None and now > camp.valid_until):
            return _result("expired", offer)
        if camp.status == "paused":
            return _result("not_eligible", offer, reason="paused")
        if camp.valid_from is not None and now < camp.valid_from:
            return _result("not_eligible", offer, reason="not_started")
        profile = self._profile(conn, merchant, viewer_id, now)
        if profile is None:
            return _result("not_eligible", offer, reason="unknown_viewer")
        if _ineligible(camp, profile):
            return _result("not_eligible", offer)

        ins = insert_for(conn)(t.claims).values(merchant=merchant, campaign_id=cid, viewer_id=viewer_id, n=1)
        n = conn.execute(
            ins.on_conflict_do_update(
                index_elements=["merchant", "campaign_id", "viewer_id"],
                set_={"n": t.claims.c.n + 1},
                where=t.claims.c.n < camp.per_viewer_limit,
            ).returning(t.claims.c.n)
        ).scalar()
        if n is None:
            return _result("limit_reached", offer, limit=camp.per_viewer_limit)
        self._fire("after_claim")

        face = _face_fen(camp)
        took = conn.execute(
            update(c)
            .where(
                c.c.merchant == merchant,
                c.c.campaign_id == cid,
                c.c.status == "active",
                c.c.issued_count < c.c.budget_count,
                or_(c.c.budget_money_fen.is_(None), c.c.issued_value_fen + face <= c.c.budget_money_fen),
            )
            .values(issued_count=c.c.issued_count + 1, issued_value_fen=c.c.issued_value_fen + face, updated_at=now)
        )
        if took.rowcount != 1:
            raise _Abort(_result("budget_exhausted", offer))  # also undoes the viewer's claim count
        self._fire("after_budget")

        coupon_id = "CP" + uuid.uuid4().hex[:24]
        conn.execute(
            insert(cp),
            [
                {
                    "coupon_id": coupon_id,
                    "merchant": merchant,
                    "campaign_id": cid,
                    "viewer_id": viewer_id,
                    "idempotency_key": key,
                    "face_value_fen": face,
                    "status": "issued",
                    "issued_at": now,
                    "expires_at": camp.valid_until,
                }
            ],
        )
        self._fire("after_coupon")
        conn.execute(
            insert(t.ledger),
            [
                {
                    "merchant": merchant,
                    "campaign_id": cid,
                    "coupon_id": coupon_id,
                    "viewer_id": viewer_id,
                    "op": "issue",
                    "value_fen": face,
                    "idempotency_key": key,
                    "at": now,
                }
            ],
        )
        self._fire("before_commit")
        return _result("issued", offer, coupon_id)

    # --- redemption -----------------------------------------------------------------------------
    def redeem(self, merchant: str, req: RedeemIn | dict) -> RedeemResult:
        """Use coupons on an order: ownership, validity, threshold, products and stackability checked;
        idempotent by order id."""
        check_merchant(merchant)
        req = req if isinstance(req, RedeemIn) else RedeemIn.model_validate(req)
        ids = list(dict.fromkeys(req.coupon_ids))
        for attempt in range(5):
            try:
                with self._write() as conn:
                    return self._redeem_tx(conn, merchant, req, ids, self.clock())
            except _Abort as a:
                return a.result
            except (IntegrityError, OperationalError) as e:
                log.warning("redeem attempt %d failed: %s", attempt + 1, e)
                time.sleep(0.05 * (attempt + 1))
        return RedeemResult(ok=False, code="error", message=_message("error"))

    def _redeem_tx(self, conn, merchant: str, req: RedeemIn, ids: list[str], now: float) -> RedeemResult:
        c, cp = t.campaigns, t.coupons
        q = (
            select(
                cp,
                c.c.kind,
                c.c.amount_fen,
                c.c.discount,
                c.c.max_off_fen,
                c.c.threshold_fen,
                c.c.skus,
                c.c.stackable,
                c.c.title,
            )
            .join(c, (c.c.merchant == cp.c.merchant) & (c.c.campaign_id == cp.c.campaign_id))
            .where(cp.c.merchant == merchant, cp.c.coupon_id.in_(ids))
        )
        if not is_sqlite(conn):
            q = q.with_for_update(of=cp)
        rows = {r.coupon_id: r for r in conn.execute(q)}

        def no(code: str, msg: str) -> RedeemResult:
            return RedeemResult(ok=False, code=code, message=msg, coupon_ids=ids)

        if len(rows) != len(ids):
            return no("not_found", "抱歉，没有找到这张券，请确认一下券码～")
        if any(r.viewer_id != req.viewer_id for r in rows.values()):
            return no("not_owner", "这张券不在您的卡包里哦～")
        used = [r for r in rows.values() if r.status == "redeemed"]
        if used:
            if all(r.order_id == req.order_id for r in rows.values()):
                return RedeemResult(
                    ok=True,
                    code="already_redeemed",
                    message="这笔订单已经用过这张券啦～",
                    coupon_ids=ids,
                    discount=sum(int(x) for x in self._ledger_redeemed(conn, ids)) / 100.0,
                )
            return no("already_redeemed", "这张券已经使用过啦～")
        if any(r.expires_at is not None and now > r.expires_at for r in rows.values()):
            return no("expired", "抱歉，这张券已经过期啦～")
        if len(ids) > 1 and not all(r.stackable for r in rows.values()):
            return no("not_stackable", "这几张券不能叠加使用哦，请选择其中一张～")
        remaining = round(req.order_value * 100)
        order_skus = set(req.skus or [])
        discounts: dict[str, int] = {}
        for cid in ids:  # apply in the order given
            r = rows[cid]
            if round(req.order_value * 100) < r.threshold_fen:
                return no("below_threshold", f"订单满{_fmt(r.threshold_fen / 100)}元才能用这张券哦～")
            skus = set(json.loads(r.skus))
            if skus and not skus & order_skus:
                return no("not_applicable", "这张券只适用于指定商品哦～")
            if r.kind == "amount":
                off = min(int(r.amount_fen or 0), remaining)
            else:
                off = int(round(remaining * (1 - (r.discount or 1))))
                if r.max_off_fen is not None:
                    off = min(off, int(r.max_off_fen))
            discounts[cid] = off
            remaining -= off
        for cid, off in discounts.items():
            done = conn.execute(
                update(cp)
                .where(cp.c.coupon_id == cid, cp.c.status == "issued")
                .values(status="redeemed", redeemed_at=now, order_id=req.order_id)
            )
            if done.rowcount != 1:
                raise _Abort(no("conflict", "这张券刚刚被使用了，请刷新后再试～"))
            conn.execute(
                insert(t.ledger),
                [
                    {
                        "merchant": merchant,
                        "campaign_id": rows[cid].campaign_id,
                        "coupon_id": cid,
                        "viewer_id": req.viewer_id,
                        "op": "redeem",
                        "value_fen": off,
                        "order_id": req.order_id,
                        "at": now,
                    }
                ],
            )
        total = sum(discounts.values()) / 100.0
        return RedeemResult(
            ok=True, code="redeemed", message=f"已为您抵扣{_fmt(total)}元～", discount=total, coupon_ids=ids
        )

    def _ledger_redeemed(self, conn, ids: list[str]) -> list[int]:
        return list(
            conn.execute(
                select(t.ledger.c.value_fen).where(t.ledger.c.coupon_id.in_(ids), t.ledger.c.op == "redeem")
            ).scalars()
        )

    def coupons_of(self, merchant: str, viewer_id: str) -> list[dict[str, Any]]:
        cp = t.coupons
        with read_tx(self.engine) as conn:
            rows = conn.execute(
                select(cp).where(cp.c.merchant == merchant, cp.c.viewer_id == viewer_id).order_by(cp.c.issued_at)
            )
            return [
                {
                    "coupon_id": r.coupon_id,
                    "campaign_id": r.campaign_id,
                    "status": r.status,
                    "face_value": r.face_value_fen / 100.0,
                    "order_id": r.order_id,
                }
                for r in rows
            ]

    # --- audit -------------------------------------------------------------------------------------
    def ledger_check(self, merchant: str, campaign_id: str) -> dict[str, Any]:
        """The ledger's invariants for one campaign (all must hold, whatever crashed when)."""
        c, cp, lg, cl = t.campaigns, t.coupons, t.ledger, t.claims
        with read_tx(self.engine) as conn:
            camp = conn.execute(select(c).where(c.c.merchant == merchant, c.c.campaign_id == campaign_id)).first()
            if camp is None:
                raise KeyError(campaign_id)
            n_coupons, v_coupons = conn.execute(
                select(func.count(), func.coalesce(func.sum(cp.c.face_value_fen), 0)).where(
                    cp.c.merchant == merchant, cp.c.campaign_id == campaign_id
                )
            ).one()
            n_issue, v_issue = conn.execute(
                select(func.count(), func.coalesce(func.sum(lg.c.value_fen), 0)).where(
                    lg.c.merchant == merchant, lg.c.campaign_id == campaign_id, lg.c.op == "issue"
                )
            ).one()
            claims_sum = conn.execute(
                select(func.coalesce(func.sum(cl.c.n), 0)).where(
                    cl.c.merchant == merchant, cl.c.campaign_id == campaign_id
                )
            ).scalar_one()
            per_viewer = (
                select(cp.c.viewer_id, func.count().label("k"))
                .where(cp.c.merchant == merchant, cp.c.campaign_id == campaign_id)
                .group_by(cp.c.viewer_id)
                .subquery()
            )
            over_limit = conn.execute(
                select(func.count()).select_from(per_viewer).where(per_viewer.c.k > camp.per_viewer_limit)
            ).scalar_one()
            dup_keys = conn.execute(
                select(func.count()).select_from(
                    select(lg.c.idempotency_key)
                    .where(lg.c.merchant == merchant, lg.c.campaign_id == campaign_id, lg.c.op == "issue")
                    .group_by(lg.c.idempotency_key)
                    .having(func.count() > 1)
                    .subquery()
                )
            ).scalar_one()
            orphans = conn.execute(
                select(func.count())
                .select_from(cp)
                .outerjoin(lg, (lg.c.coupon_id == cp.c.coupon_id) & (lg.c.op == "issue"))
                .where(cp.c.merchant == merchant, cp.c.campaign_id == campaign_id, lg.c.id.is_(None))
            ).scalar_one()
        v_coupons, v_issue, claims_sum = int(v_coupons), int(v_issue), int(claims_sum)
        out = {
            "campaign_id": campaign_id,
            "budget": camp.budget_count,
            "issued_count": camp.issued_count,
            "coupons": n_coupons,
            "ledger_issues": n_issue,
            "claims": claims_sum,
            "issued_value": camp.issued_value_fen / 100.0,
            "coupon_value": v_coupons / 100.0,
            "ledger_value": v_issue / 100.0,
            "over_limit_viewers": over_limit,
            "duplicate_keys": dup_keys,
            "coupons_without_ledger": orphans,
        }
        out["ok"] = (
            camp.issued_count == n_coupons == n_issue == claims_sum
            and camp.issued_count <= camp.budget_count
            and camp.issued_value_fen == v_coupons == v_issue
            and over_limit == 0
            and dup_keys == 0
            and orphans == 0
            and (camp.budget_money_fen is None or v_issue <= camp.budget_money_fen)
        )
        return out
