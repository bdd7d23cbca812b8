"""Parley in English and Simplified Chinese: every string marked, the catalogue complete and
compiled, pages, errors and operator output in the reader's language, the API in English.

The catalogue test runs `makemessages` (GNU xgettext) on a copy of the sources. Without
xgettext/msgfmt those tests skip, unless PARLEY_REQUIRE_GETTEXT=1 (CI), where they fail.
"""

# ruff: noqa: RUF001 - Chinese text uses full-width punctuation on purpose

from __future__ import annotations

import gettext
import json
import os
import re
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.template.loader import render_to_string
from django.utils import translation

from accounts.models import User
from chat.models import ChatSession, MessageStatus
from config import health
from config.i18n_checks import MAKEMESSAGES_IGNORE, read_po, unmarked_text
from models_registry.models import ModelConfig

ROOT = Path(settings.BASE_DIR)
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
PO = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-Hans"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
MAKEMESSAGES_ARGS = ["-l", "zh_Hans", "--no-obsolete", "-v", "0"]
PLACEHOLDER = re.compile(r"%\(\w+\)[sdrg]|\{\w+\}|</?\w+>")


def _require_gettext() -> None:
    """Skip without GNU gettext; fail instead under PARLEY_REQUIRE_GETTEXT=1 (CI)."""
    missing = [tool for tool in ("xgettext", "msgfmt") if shutil.which(tool) is None]
    if missing and os.environ.get("PARLEY_REQUIRE_GETTEXT") == "1":
        pytest.fail(f"PARLEY_REQUIRE_GETTEXT=1 but {', '.join(missing)} missing (apt-get gettext)")
    if missing:
        pytest.skip(f"needs GNU gettext ({', '.join(missing)}): apt-get install gettext")


@pytest.fixture(scope="module")
def catalogue() -> dict:
    return read_po(PO)


# --- (a) Templates: no text outside {% translate %} ------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_template_marks_its_text_for_translation(template):
    assert unmarked_text(template) == [], "mark with {% translate %} / {% blocktranslate %}"


def test_the_checker_finds_unmarked_text(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        '{% load i18n %}<h1>{% translate "Fine" %}</h1><p>Not fine</p>'
        '<input placeholder="Nope"><code>skipped()</code>',
        encoding="utf-8",
    )
    assert [text for _line, text in unmarked_text(page)] == ["Not fine", "Nope"]


# --- (b) The catalogue holds every message, translated -----------------------------------


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict:
    """What `makemessages` finds in the sources today (docs/i18n.md's command, on a copy)."""
    _require_gettext()
    copy = tmp_path_factory.mktemp("sources") / "parley"
    top_level_skipped = {"data", "staticfiles", "locale", "docs", "node_modules"}

    def skipped(folder: str, names: list[str]) -> list[str]:
        top = Path(folder) == ROOT
        return [
            name
            for name in names
            if name == "__pycache__" or (top and (name in top_level_skipped or name[0] == "."))
        ]

    shutil.copytree(ROOT, copy, ignore=skipped)
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATA_DIR": str(copy / "data"),
        "DATABASE_URL": f"sqlite:///{copy / 'data' / 'db.sqlite3'}",
        "CACHE_URL": "locmemcache://",
        "LANGUAGE_CODE": "en",
    }
    ignore = [f"--ignore={pattern}" for pattern in MAKEMESSAGES_IGNORE]
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", *MAKEMESSAGES_ARGS, "--keep-pot", *ignore],
        cwd=copy,
        env=environment,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return read_po(copy / "locale" / "django.pot")


def test_every_extracted_message_is_translated(extracted, catalogue):
    assert len(extracted) > 500  # the extraction really ran over the whole project
    missing = [key for key in extracted if key not in catalogue]
    assert missing == [], "run makemessages (docs/i18n.md) and translate these"
    untranslated = [key for key in extracted if not catalogue[key].translated]
    assert untranslated == [], "empty or fuzzy in locale/zh_Hans/LC_MESSAGES/django.po"
    plural_mismatch = [
        key for key, entry in extracted.items() if entry.msgid_plural != catalogue[key].msgid_plural
    ]
    assert plural_mismatch == []


def test_the_catalogue_compiles_without_warnings(tmp_path):
    _require_gettext()
    result = subprocess.run(
        ["msgfmt", "--check", "-o", str(tmp_path / "django.mo"), str(PO)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_the_catalogue_is_complete_and_consistent(catalogue):
    """What needs no gettext: every entry translated, not fuzzy, placeholders kept."""
    header = PO.read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert '"Plural-Forms: nplurals=1; plural=0;\\n"' in header
    assert '"Language: zh_Hans\\n"' in header
    assert "fuzzy" not in header
    assert [key for key, entry in catalogue.items() if not entry.translated] == []
    for key, entry in catalogue.items():
        expected = set(PLACEHOLDER.findall(entry.msgid_plural or entry.msgid))
        allowed = expected | set(PLACEHOLDER.findall(entry.msgid))
        for translation_ in entry.msgstr:
            found = set(PLACEHOLDER.findall(translation_))
            assert expected <= found <= allowed, key
        assert len(entry.msgstr) == 1, f"{key}: Chinese has one plural form"


def test_the_glossary_agrees_with_the_catalogue(catalogue):
    """docs/i18n.md's glossary rows whose English term is a message: the same Chinese."""
    text = (ROOT / "docs" / "i18n.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|", text, re.MULTILINE)
    by_msgid: dict[str, set[str]] = {}
    for entry in catalogue.values():
        if entry.msgctxt is None:
            by_msgid.setdefault(entry.msgid.lower(), set()).add(entry.msgstr[0])
    checked = 0
    for english, chinese in rows:
        english = english.strip("` ")
        if english.lower() in by_msgid and not english.startswith("English"):
            assert by_msgid[english.lower()] == {chinese.strip("` ")}, english
            checked += 1
    assert checked >= 15


# --- (c) The committed .mo is the .po compiled -------------------------------------------


def test_the_compiled_catalogue_matches_the_po(catalogue):
    assert MO.exists(), "run compilemessages (docs/i18n.md) and commit the .mo"
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)._catalog  # the parsed .mo
    expected: dict[object, str] = {}
    for entry in catalogue.values():
        msgid = entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}\x04{entry.msgid}"
        if entry.msgid_plural is None:
            expected[msgid] = entry.msgstr[0]
        else:
            for number, text in enumerate(entry.msgstr):
                expected[(msgid, number)] = text
    compiled = {key: value for key, value in compiled.items() if key != ""}
    assert compiled == expected, "the .mo is stale: run compilemessages"


# --- (d) Pages in the reader's language --------------------------------------------------


@pytest.fixture
def system_model(db) -> ModelConfig:
    model = ModelConfig(name="Helper", api_url="http://127.0.0.1:9/v1", model="m")
    model.save()
    return model


@pytest.mark.django_db
def test_the_chat_page_follows_accept_language(bob_client, system_model):
    page = bob_client.get("/", **ZH)
    html = page.content.decode()
    assert page["Content-Language"] == "zh-hans"
    assert '<html lang="zh-hans"' in html
    for text in ("新建会话", "发送", "会话", "模型", "退出登录", "跳到正文", "语言", "切换"):
        assert text in html, text
    assert "New chat" not in html and ">Send<" not in html
    english = bob_client.get("/", **EN).content.decode()
    assert '<html lang="en"' in english
    assert "New chat" in english and "新建会话" not in english


@pytest.mark.django_db
def test_the_chat_script_gets_its_words_from_the_page(bob_client, system_model):
    html = bob_client.get("/", **ZH).content.decode()
    labels = re.search(r'<span id="chat-labels" hidden([^>]*)>', html).group(1)
    for attribute, text in {
        "data-you": "你",
        "data-writing": "正在生成…",
        "data-stopped": "已停止",
        "data-copied": "已复制",
        "data-offline": "无法连接到 Parley。请检查网络连接后重新发送。",
    }.items():
        assert f'{attribute}="{text}"' in labels, attribute
    script = (ROOT / "static" / "js" / "chat.js").read_text(encoding="utf-8")
    assert not re.search(r"[\u4e00-\u9fff]", script), "no Chinese (or any) words in chat.js"


@pytest.mark.django_db
def test_the_log_in_page_follows_accept_language(client):
    html = client.get("/accounts/login/", **ZH).content.decode()
    assert '<html lang="zh-hans"' in html
    for text in ("登录", "用户名", "密码", "还没有账号？", "简体中文"):
        assert text in html, text
    english = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert "Log in" in english.content.decode()
    assert english["Content-Language"] == "en"


@pytest.mark.django_db
def test_a_chinese_browser_asking_for_zh_cn_gets_simplified_chinese(client):
    page = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.8")
    assert page["Content-Language"] == "zh-hans"


@pytest.mark.django_db
def test_the_admin_status_page_follows_accept_language(alice_client, monkeypatch):
    monkeypatch.setattr(health, "newest_backup_time", lambda: None)
    monkeypatch.setattr("config.backups.latest_backups", lambda *a, **k: {"full": None})
    html = alice_client.get("/admin/status/", **ZH).content.decode()
    for text in ("系统状态", "数据库大小", "可用磁盘空间", "行数", "用户", "会话", "审计事件"):
        assert text in html, text
    assert "还没有做过备份（manage.py backup）。" in html  # a health problem, translated
    assert "完整" in html and "慢查询" in html
    english = alice_client.get("/admin/status/", **EN).content.decode()
    assert "System status" in english and "No backup has been taken yet" in english


@pytest.mark.django_db
def test_the_admin_labels_of_our_models_are_translated(alice_client):
    html = alice_client.get("/admin/", **ZH).content.decode()
    for text in ("管理后台", "系统设置", "审计事件", "API 令牌", "模型"):
        assert text in html, text
    user_page = alice_client.get("/admin/accounts/user/", **ZH).content.decode()
    assert "批准所选用户" in user_page  # an admin action's description


def test_the_error_pages_are_translated():
    with translation.override("zh-hans"):
        html = render_to_string("500.html")
    assert '<html lang="zh-hans">' in html
    assert "出错了" in html and "返回你的会话" in html
    with translation.override("en"):
        assert '<html lang="en">' in render_to_string("500.html")


@pytest.mark.django_db
def test_a_404_page_is_translated(bob_client):
    page = bob_client.get("/chats/999999/", **ZH)
    assert page.status_code == 404
    assert "页面不存在" in page.content.decode()


@pytest.mark.django_db
def test_the_theme_choice_system_reads_follow_the_system(bob_client):
    html = bob_client.get("/accounts/", **ZH).content.decode()
    assert "跟随系统" in html and "浅色" in html and "深色" in html


# --- The /v1 API stays English ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("get", "/v1/models", 401, "Send your Parley API token"),
        ("post", "/v1/chat/completions", 401, "Send your Parley API token"),
        ("delete", "/v1/models", 405, "DELETE is not allowed here."),
        ("get", "/v1/nowhere", 404, "There is no /v1/nowhere in Parley's API."),
    ],
)
def test_api_errors_stay_english_whatever_the_browser_says(client, method, path, status, message):
    response = getattr(client, method)(path, HTTP_ACCEPT_LANGUAGE="zh-Hans,zh;q=0.9")
    assert response.status_code == status
    assert response.json()["error"]["message"].startswith(message)
    assert response["Content-Language"] == "en"


@pytest.mark.django_db
def test_api_errors_stay_english_for_a_user_who_chose_chinese(bob, system_model):
    from django.test import Client

    from accounts.api_tokens import create_api_token

    User.objects.filter(pk=bob.pk).update(language="zh-hans")
    _token, raw = create_api_token(user=bob, name="t")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_ACCEPT_LANGUAGE="zh-Hans")
    body = {"model": "nothing-here", "messages": [{"role": "user", "content": "hi"}]}
    response = client.post("/v1/chat/completions", json.dumps(body), "application/json")
    assert response.status_code == 404
    assert "does not exist" in response.json()["error"]["message"]


# --- Streamed answers: error reasons in the user's language ------------------------------


def _events(response) -> list[tuple[str, dict]]:
    events = []
    for block in b"".join(response.streaming_content).decode().split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if lines:
            name = lines[0].removeprefix("event: ")
            events.append((name, json.loads("".join(x.removeprefix("data: ") for x in lines[1:]))))
    return events


@pytest.fixture
def refusing_model(mock_llm) -> ModelConfig:
    """The mock provider refusing the API key (a 401 from upstream, read in a helper thread)."""
    model = ModelConfig(name="Refuser", api_url=mock_llm.base_url, model="mock-http_401")
    model.set_api_key("sk-mock-0000")
    model.save()
    return model


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "reason", "context"),
    [
        ("zh-hans", "服务商拒绝了该 API 密钥。", "上下文共"),
        ("en", "The API key was refused by the provider.", "tokens in context"),
    ],
)
def test_sse_error_reasons_come_in_the_users_language(
    bob, bob_client, refusing_model, language, reason, context
):
    User.objects.filter(pk=bob.pk).update(language=language)
    chat = ChatSession.objects.create(user=bob, model_config=refusing_model)
    response = bob_client.post(
        f"/chats/{chat.pk}/send/",
        {"content": "hello"},
        HTTP_ACCEPT="text/event-stream",
        HTTP_ACCEPT_LANGUAGE="en" if language != "en" else "zh-Hans",
    )
    translation.activate("fr")  # whatever the thread's language is while the stream is read
    events = _events(response)
    assert events[0][0] == "start" and context in events[0][1]["context_text"]
    assert events[-1][0] == "error"
    assert events[-1][1]["error"] == reason
    answer = chat.messages.get(role="assistant")
    assert answer.status == MessageStatus.ERROR and answer.error == reason


# --- Operators: health mails and command output -------------------------------------------


@pytest.mark.django_db
def test_health_mails_reach_each_admin_in_their_language(settings, alice, make_user, monkeypatch):
    settings.EMAIL_URL_CONFIGURED = True
    monkeypatch.setattr(health, "newest_backup_time", lambda: None)
    User.objects.filter(pk=alice.pk).update(language="zh-hans")
    make_user("ada", role="admin")  # no language: the server's (English)
    health.check_health()
    by_recipient = {tuple(message.to): message for message in mail.outbox}
    assert set(by_recipient) == {("alice@example.com",), ("ada@example.com",)}
    chinese = by_recipient[("alice@example.com",)]
    assert "还没有做过备份" in chinese.subject and "系统状态" in chinese.body
    assert "No backup has been taken yet" in by_recipient[("ada@example.com",)].subject


@pytest.mark.django_db
def test_healthz_problems_are_in_the_servers_language(client, monkeypatch):
    monkeypatch.setattr(health, "newest_backup_time", lambda: None)
    body = client.get("/healthz", HTTP_ACCEPT_LANGUAGE="zh-Hans").json()
    assert body["problems"] == ["No backup has been taken yet (manage.py backup)."]


@pytest.mark.django_db
def test_command_output_follows_the_active_language():
    out = StringIO()
    with translation.override("zh-hans"):
        call_command("cleanup", "--dry-run", "--no-vacuum", stdout=out)
    text = out.getvalue()
    assert text.startswith("清理（试运行）：不会做任何修改。")
    assert "过期的登录 session：将删除 0 个。" in text
    out = StringIO()
    call_command("cleanup", "--dry-run", "--no-vacuum", stdout=out)
    assert out.getvalue().startswith("Clean-up, dry run: nothing is changed.")


def test_command_help_is_translated():
    from django.core.management import load_command_class

    command = load_command_class("config", "backup")
    with translation.override("zh-hans"):
        text = command.create_parser("manage.py", "backup").format_help()
    assert "在 Parley 运行时备份数据库。" in text
    assert "开始一条新的备份链。" in text


def test_the_machine_readable_token_line_is_untranslated():
    source = (ROOT / "accounts" / "management" / "commands" / "create_api_token.py").read_text()
    assert "self.stdout.write(raw_token)" in source
