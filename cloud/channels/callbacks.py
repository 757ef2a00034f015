"""The HTTP endpoints the SMS providers push delivery reports to; the cloud web app mounts this blueprint.

Neither Aliyun's SmsReport push nor Tencent's status callback is signed, so the URL itself carries a secret
token (configured at the provider's console as ``https://<host>/channels/receipts/<token>/aliyun``); a wrong
token is a 404. Each report is stored verbatim (``contact_log.record_receipts``) and the provider gets the
answer it expects, or it pushes again.

The replies people send to our SMS come the same way (``cloud.channels.inbound``): Aliyun's SmsUp push at
``.../<token>/aliyun/smsup``, Tencent's 短信回复回调 at ``.../<token>/tencent/reply``. Neither is signed either; a
push to these with a wrong token is refused with HTTP 403 and a plain answer (logged: someone tried to forge a
reply), and a reply pushed twice is stored once.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, request

from cloud.channels import contact_log, inbound, sms_aliyun, sms_tencent
from cloud.clock import Clock, SystemClock

log = logging.getLogger(__name__)


def receipts_blueprint(token: str, *, clock: Clock | None = None) -> Blueprint:
    if len(token) < 16:
        raise ValueError("the callback token must be at least 16 characters (it is the only protection)")
    bp = Blueprint("channel_receipts", __name__, url_prefix="/channels/receipts")

    def now() -> Clock:
        """The clock given, else the app's (tests set ``app.config["CLOCK"]``), else the system's."""
        return clock or current_app.config.get("CLOCK") or SystemClock()

    def check(given: str) -> None:
        if not hmac.compare_digest(given.encode(), token.encode()):
            abort(404)

    @bp.post("/<given>/aliyun")
    def aliyun(given: str):  # type: ignore[no-untyped-def]
        check(given)
        try:
            receipts = sms_aliyun.parse_sms_report(request.get_data())
        except (ValueError, KeyError, TypeError) as err:
            log.warning("Aliyun SmsReport not understood: %s", err)
            return jsonify({"code": 1, "msg": "无法解析"}), 400
        contact_log.record_receipts(receipts, now())
        return jsonify(sms_aliyun.SMS_REPORT_ANSWER)

    @bp.post("/<given>/tencent")
    def tencent(given: str):  # type: ignore[no-untyped-def]
        check(given)
        try:
            receipts = sms_tencent.parse_status_callback(request.get_data())
        except (ValueError, KeyError, TypeError) as err:
            log.warning("Tencent status callback not understood: %s", err)
            return jsonify({"result": 1, "errmsg": "bad request"}), 400
        contact_log.record_receipts(receipts, now())
        return jsonify(sms_tencent.STATUS_CALLBACK_ANSWER)

    def check_inbound(given: str, provider: str) -> tuple[Any, int] | None:
        if hmac.compare_digest(given.encode(), token.encode()):
            return None
        log.warning("%s reply push refused: wrong callback token (from %s)", provider, request.remote_addr)
        why = "回调令牌不正确，已拒收 / wrong callback token: refused (check the URL set at the provider's console)"
        if provider == "tencent":
            return jsonify({"result": 1, "errmsg": why}), 403
        return jsonify({"code": 1, "msg": why}), 403

    @bp.post("/<given>/aliyun/smsup")
    def aliyun_smsup(given: str):  # type: ignore[no-untyped-def]
        refused = check_inbound(given, "aliyun")
        if refused:
            return refused
        try:
            replies = inbound.parse_aliyun_smsup(request.get_data())
        except (ValueError, KeyError, TypeError) as err:
            log.warning("Aliyun SmsUp not understood: %s", err)
            return jsonify({"code": 1, "msg": f"无法解析 / not understood: {err}"}), 400
        inbound.record_replies(replies, now())
        return jsonify(inbound.ALIYUN_ANSWER)

    @bp.post("/<given>/tencent/reply")
    def tencent_reply(given: str):  # type: ignore[no-untyped-def]
        refused = check_inbound(given, "tencent")
        if refused:
            return refused
        try:
            replies = inbound.parse_tencent_reply(request.get_data())
        except (ValueError, KeyError, TypeError) as err:
            log.warning("Tencent reply callback not understood: %s", err)
            return jsonify({"result": 1, "errmsg": f"无法解析 / not understood: {err}"}), 400
        inbound.record_replies(replies, now())
        return jsonify(inbound.TENCENT_ANSWER)

    return bp
