"""What a person sees when a page cannot be served, on both sites: a page in Chinese (English second) that says
what happened and what to do, with a way back (the first page, or the login page), under the right status code,
never a traceback.

Each site renders the words below with its own ``error.html``. Answers meant for programs keep Flask's plain
answer: a path the site names as such (the kiosk's feed, a JSON job status, the providers' receipts, metrics), a
client that asks for JSON only, and an abort that carries its own answer (``opskit.urlints``' plain 400 that
names the wrong number).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException

# code: (Chinese title, what to do, English title, what to do in English)
WORDS: dict[int, tuple[str, str, str, str]] = {
    400: (
        "请求无效",
        "页面收到的内容不完整或已过期（例如表单在另一个窗口提交过）。请返回上一页，刷新后重新填写提交。",
        "Bad request",
        "The page received something incomplete or out of date (a form sent from another window, say). "
        "Go back, reload the page and send it again.",
    ),
    403: (
        "没有权限",
        "您的账号无权查看或办理此项。如需办理，请联系人事管理员开通权限；或用有权限的账号重新登录。",
        "Not allowed",
        "Your account may not see or do this. Ask an HR administrator for the right, or sign in with an account "
        "that has it.",
    ),
    404: (
        "页面不存在",
        "您要找的页面或记录不存在，可能链接有误，或记录已被删除。请从首页重新进入。",
        "Page not found",
        "The page or record you asked for does not exist: the link may be wrong or the record gone. "
        "Start again from the first page.",
    ),
    405: (
        "不能这样打开此页面",
        "此地址只接受表单提交，不能直接打开。请从首页重新进入。",
        "Not opened this way",
        "This address only takes a form's submission. Start again from the first page.",
    ),
    408: (
        "上传超时",
        "文件在规定时间内没有传完，可能是网络较慢。请换到较好的网络后重新上传，或把文件压小一些。",
        "Upload timed out",
        "The file did not arrive in time; the network may be slow. Try again on a better connection, "
        "or send a smaller file.",
    ),
    413: (
        "文件太大",
        "上传的文件或表单超过了允许的大小（{limit}）。请把文件压小或分成几个后再上传。",
        "File too large",
        "The file or form is larger than allowed ({limit}). Make it smaller or split it, then send it again.",
    ),
    500: (
        "系统出错",
        "处理您的请求时系统出错，您刚才的操作可能没有完成。请稍后重试；如果再次出现，请把出错时间告诉系统管理员。",
        "Something went wrong",
        "The system failed while handling your request; what you just did may not have been done. Try again "
        "later; if it happens again, tell the administrator the time it happened.",
    ),
}
CODES = tuple(WORDS)


def register(app: Flask, *, plain_paths: Iterable[str] = ()) -> None:
    """Serve ``error.html`` from ``app``'s templates for each code of ``WORDS``; the template gets ``code``,
    ``zh_title``, ``zh_text``, ``en_title``, ``en_text``. ``plain_paths``: path prefixes answered for programs."""
    plain = tuple(plain_paths)

    def page(err: HTTPException) -> Any:
        code = err.code or 500
        own_answer = err.response is not None or type(err).get_body is not HTTPException.get_body
        if own_answer or request.path.startswith(plain) or _wants_json():
            return err
        zh_title, zh_text, en_title, en_text = WORDS.get(code, WORDS[500])
        limit = _size(app.config.get("MAX_CONTENT_LENGTH"))
        words = {
            "code": code,
            "zh_title": zh_title,
            "zh_text": zh_text.format(limit=limit),
            "en_title": en_title,
            "en_text": en_text.format(limit=limit),
        }
        return render_template("error.html", **words), code

    for code in CODES:  # 500 included: an exception no view handled comes as InternalServerError, logged
        app.register_error_handler(code, page)


def _wants_json() -> bool:
    best = request.accept_mimetypes.best
    return best == "application/json" or request.path.endswith(".json")


def _size(limit: int | None) -> str:
    if not limit:
        return "—"
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
