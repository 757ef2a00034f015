"""``opskit.download``: a download's Content-Disposition, whatever its name holds."""

from __future__ import annotations

from urllib.parse import unquote

from werkzeug.datastructures import Headers

from opskit.download import content_disposition


def test_a_plain_name_is_the_same_in_both_forms():
    assert content_disposition("a-1.zip") == "attachment; filename=\"a-1.zip\"; filename*=UTF-8''a-1.zip"
    assert content_disposition("a.pdf", inline=True).startswith('inline; filename="a.pdf"')


def test_quotes_line_breaks_and_chinese_never_reach_the_header_raw():
    value = content_disposition('e-x"\r\nSet-Cookie: a=b; 张三\x00.zip')
    Headers().set("Content-Disposition", value)  # werkzeug refuses a header with a line break
    head, plain, encoded = value.split("; ")
    assert head == "attachment"
    assert plain == 'filename="e-x_Set-Cookie_a_b_.zip"'
    assert encoded.startswith("filename*=UTF-8''") and '"' not in encoded and " " not in encoded
    assert unquote(encoded.removeprefix("filename*=UTF-8''")) == 'e-x"Set-Cookie: a=b; 张三.zip'


def test_a_name_of_nothing_but_chinese_still_has_an_ascii_fallback():
    assert content_disposition("张三").startswith('attachment; filename="download"; ')
