"""A small HTTP client with cookies, that logs in through the real login form."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request


class WebClient:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, timeout=10) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode("utf-8")

    def post(self, path: str, form: dict[str, str]) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode()
        try:
            with self.opener.open(self.base + path, data=data, timeout=10) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode("utf-8")

    def csrf(self, page: str) -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match, "the page has no CSRF token"
        return match.group(1)

    def login(self, username: str, password: str) -> tuple[int, str]:
        _status, page = self.get("/login")
        return self.post("/login", {"csrf": self.csrf(page), "username": username, "password": password})
