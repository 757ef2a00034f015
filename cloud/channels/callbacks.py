"""The HTTP endpoints the SMS providers push delivery reports to; the cloud web app mounts this blueprint.

Neither Aliyun's SmsReport push nor Tencent's status callback is signed, so the URL itself carries a secret
token (configured at the provider's console as ``https://<host>/channels/receipts/<token>/aliyun``); a wrong
token is a 404. Each report is stored verbatim (``contact_log.record_receipts``) and the provider gets the
answer it expects, or it pushes again.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, abort, jsonify, request

from cloud.channels import contact_log, sms_aliyun, sms_tencent
from cloud.clock import Clock, SystemClock

log = logging.getLogger(__name__)


def receipts_blueprint(token: str, *, clock: Clock | None = None) -> Blueprint:
    if len(token) < 16:
        raise ValueError("the callback token must be at least 16 characters (it is the only protection)")
    clock = clock or SystemClock()
    bp = Blueprint("channel_receipts", __name__, url_prefix="/channels/receipts")

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
        contact_log.record_receipts(receipts, clock)
        return jsonify(sms_aliyun.SMS_REPORT_ANSWER)

    @bp.post("/<given>/tencent")
    def tencent(given: str):  # type: ignore[no-untyped-def]
        check(given)
        try:
            receipts = sms_tencent.parse_status_callback(request.get_data())
        except (ValueError, KeyError, TypeError) as err:
            log.warning("Tencent status callback not understood: %s", err)
            return jsonify({"result": 1, "errmsg": "bad request"}), 400
        contact_log.record_receipts(receipts, clock)
        return jsonify(sms_tencent.STATUS_CALLBACK_ANSWER)

    return bp
