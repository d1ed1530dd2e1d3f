"""The CLI's own messages, in zh-CN and en; domain errors bring theirs (`JifenError.message`)."""

from __future__ import annotations

import os
from typing import Any

from jifen.core.errors import pick_language

MESSAGES: dict[str, dict[str, str]] = {
    "unreachable": {
        "zh-CN": "无法连接数据库 {url}：{reason}",
        "en": "cannot reach the database at {url}: {reason}",
    },
    "no-database": {
        "zh-CN": "{url} 处没有数据库：请先运行 `jifen db upgrade`。",
        "en": "there is no database at {url}: run `jifen db upgrade` first.",
    },
    "no-schema": {
        "zh-CN": "数据库 {url} 尚未初始化：请先运行 `jifen db upgrade`。",
        "en": "the database at {url} has no jifen schema yet: run `jifen db upgrade` first.",
    },
    "behind": {
        "zh-CN": "数据库 {url} 的结构版本是 {current}，本版本 jifen 需要 {head}："
        "请先运行 `jifen db upgrade`。",
        "en": "the database at {url} is at schema revision {current} but this jifen needs "
        "{head}: run `jifen db upgrade` first.",
    },
    "ahead": {
        "zh-CN": "数据库 {url} 的结构版本 {current} 不为本版本 jifen 所知（由更新的版本迁移？）。",
        "en": "the database at {url} is at schema revision {current}, which this jifen does "
        "not know (migrated by a newer version?).",
    },
    "bad-url": {
        "zh-CN": "数据库地址无效 {url}：{reason}",
        "en": "invalid database URL {url}: {reason}",
    },
    "db-error": {
        "zh-CN": "数据库 {url} 出错：{reason}",
        "en": "database error at {url}: {reason}",
    },
    "unknown-program": {
        "zh-CN": "没有代码为 {code} 的计划（用 `jifen programs list` 查看）。",
        "en": "no programme with code {code} (see `jifen programs list`).",
    },
    "workers-memory": {
        "zh-CN": "内存中的 SQLite 数据库 {url} 每个进程各有一份：--workers 大于 1 时请用数据库文件"
        "或 PostgreSQL。",
        "en": "the in-memory SQLite database {url} would be a different one in each "
        "process: with --workers above 1 use a database file or PostgreSQL.",
    },
    "port-busy": {
        "zh-CN": "无法监听 {host}:{port}：{reason}；请用 --port 换一个端口。",
        "en": "cannot listen on {host}:{port}: {reason}; choose another with --port.",
    },
    "internal": {
        "zh-CN": "内部错误 {kind}：{reason}（设置 JIFEN_DEBUG=1 可查看详细堆栈）",
        "en": "internal error {kind}: {reason} (set JIFEN_DEBUG=1 to see the traceback)",
    },
}


def language() -> str:
    return pick_language(os.environ.get("JIFEN_LANG") or os.environ.get("LANG"))


def say(key: str, **params: Any) -> str:
    texts = MESSAGES[key]
    return (texts.get(language()) or texts["en"]).format(**params)
