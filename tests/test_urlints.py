"""``opskit.urlints``: numbers from the address are bounded, and a bad one is a plain 400."""

from __future__ import annotations

import pytest
from flask import Flask

from opskit.urlints import MAX_ID, bound_path_ints, query_int


@pytest.fixture
def client():
    app = Flask(__name__)
    bound_path_ints(app)

    @app.route("/things/<int:thing>")
    def thing(thing: int) -> str:
        return str(thing)

    @app.route("/list")
    def listing() -> str:
        return str(query_int("page", 1, lo=1, hi=100))

    return app.test_client()


@pytest.mark.parametrize("page", ["101", "0", "-1", "1e3", "1.0", "²", "١", "x", "9" * 5000, " 5 x"])
def test_a_query_number_that_is_not_in_range_is_a_plain_400(client, page):
    response = client.get("/list", query_string={"page": page})
    assert response.status_code == 400 and response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == (
        "请求中的 page 应为 1 到 100 之间的整数 / page in the request must be a whole number from 1 to 100\n"
    )


def test_a_query_number_in_range_or_absent(client):
    assert client.get("/list?page=100").get_data(as_text=True) == "100"
    assert client.get("/list?page=").get_data(as_text=True) == "1"
    assert client.get("/list").get_data(as_text=True) == "1"


def test_a_path_number_above_the_databases_largest_is_a_400(client):
    assert client.get(f"/things/{MAX_ID}").get_data(as_text=True) == str(MAX_ID)
    for huge in (str(MAX_ID + 1), "9" * 30, "9" * 5000):
        response = client.get(f"/things/{huge}")
        assert response.status_code == 400 and "编号超出范围" in response.get_data(as_text=True)
