"""A command meeting a setting or an input that cannot work says what is wrong once, in Chinese and English,
and exits. Before, `punchproof cloud web` started gunicorn's workers, each printed a traceback from the app
factory, and the master ended with "Worker failed to boot" (found trying the command with a PostgreSQL that was
down); create-user without a terminal ended in a traceback."""

from __future__ import annotations

import subprocess
import sys

from punchproof.broker import free_port

RUN = [sys.executable, "-m", "punchproof", "cloud"]
TEXT = {"capture_output": True, "text": True, "timeout": 60, "check": False}


def _web(conf, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [*RUN, "web", "-c", str(conf), "--bind", f"127.0.0.1:{free_port()}", *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_the_pages_with_their_database_down_say_so_and_start_no_worker(tmp_path):
    conf = tmp_path / "cloud.toml"
    init = [*RUN, "init", "-o", str(conf), "--state-dir", str(tmp_path / "state")]
    subprocess.run([*init, "--database-url", "postgresql://pp:pw@127.0.0.1:1/none"], check=True, capture_output=True)
    result = _web(conf)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and "Booting worker" not in result.stderr, result.stderr
    assert "数据库错误" in result.stderr and "Connection refused" in result.stderr and "[database] url" in result.stderr


def test_a_state_directory_that_cannot_be_made_is_named_with_what_to_do(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n", encoding="utf-8")
    conf = tmp_path / "cloud.toml"
    conf.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/cloud.sqlite3"\n[cloud]\nstate_dir = "{blocker}/state"\n',
        encoding="utf-8",
    )
    result = _web(conf)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Booting worker" not in result.stderr, result.stderr
    assert f"无法使用文件或目录 {blocker}/state：路径中有一项不是目录" in result.stderr, result.stderr
    assert "[cloud] state_dir" in result.stderr and "[appliance] state_dir" in result.stderr


def test_create_user_without_a_terminal_or_a_password_says_how_to_give_one(tmp_path):
    """Run from a script with nothing on standard input, create-user ended in getpass's EOFError traceback."""
    conf = tmp_path / "cloud.toml"
    init = [*RUN, "init", "-o", str(conf), "--state-dir", str(tmp_path / "state")]
    subprocess.run(init, check=True, capture_output=True)
    asked = [*RUN, "create-user", "-c", str(conf), "hr"]
    result = subprocess.run(asked, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "没有输入密码" in result.stderr and "--password-stdin" in result.stderr
    empty = subprocess.run([*asked, "--password-stdin"], input="\n", capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2 and "没有输入密码" in empty.stderr, empty.stderr
    made = subprocess.run([*asked, "--password-stdin"], input="correct horse 1\n", capture_output=True, text=True)
    assert made.returncode == 0 and made.stdout.startswith("已创建账号 hr"), made.stdout + made.stderr
    # install-cloud.md's command has no --password-stdin: fed by a script, it takes the line it is given
    piped = subprocess.run([*RUN, "create-user", "-c", str(conf), "hr2"], input="correct horse 2\n", **TEXT)
    assert piped.returncode == 0 and piped.stdout.startswith("已创建账号 hr2"), piped.stdout + piped.stderr


def test_the_plant_s_create_user_says_in_chinese_first_what_it_refused(tmp_path):
    """The appliance's account errors were English only (the pages' create-user, run by the plant's IT person)."""
    from ledger import SigningKey

    conf = tmp_path / "appliance.toml"
    (tmp_path / "cloud.pub").write_text(SigningKey.generate().verify_key.pem())
    init = [sys.executable, "-m", "punchproof", "appliance", "init", "-o", str(conf), "--plant", "p1"]
    init += ["--appliance", "pi-01", "--state-dir", str(tmp_path / "state"), "--terminal", "gate-1=127.0.0.1:4370"]
    init += ["--identity", str(tmp_path / "identity.json"), "--cloud-key", str(tmp_path / "cloud.pub")]
    subprocess.run(init, check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    asked = [sys.executable, "-m", "punchproof", "appliance", "create-user", "-c", str(conf), "--password-stdin"]
    short = subprocess.run([*asked, "boss"], input="short\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 1 and short.stderr.startswith("未创建 / not created: 密码至少 10 个字符"), short.stderr
    bad = subprocess.run([*asked, "a b"], input="long enough 1\n", capture_output=True, text=True, timeout=60)
    assert "用户名为 2–64 个字母" in bad.stderr, bad.stderr
    made = subprocess.run([*asked, "boss"], input="long enough 1\n", capture_output=True, text=True, timeout=60)
    assert made.returncode == 0 and made.stdout.startswith("已创建账号 boss"), made.stdout + made.stderr
    again = subprocess.run([*asked, "boss"], input="long enough 1\n", capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "用户 boss 已存在" in again.stderr, again.stderr
