"""Refusals of programme configuration: a programme file with mistakes, a stale rules version."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jifen.core.errors import JifenError


@dataclass(frozen=True)
class FileProblem:
    """One mistake in a programme file: where (line, field path) and what."""

    source: str
    line: int | None
    """None: the file was not read from text (a `ProgramFile` built in code)."""
    path: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ProgramFileInvalid(JifenError):
    """The programme file has mistakes; each names its line and field. Nothing was changed."""

    code = "invalid-programme-file"
    status = 422
    title = {"zh-CN": "计划配置文件有误", "en": "Invalid programme file"}
    template = {
        "zh-CN": "{source} 有 {count} 处错误，未做任何更改；第一处：{first}",
        "en": "{source} has {count} mistake(s) and nothing was changed; the first: {first}",
    }

    def __init__(self, problems: Sequence[FileProblem]) -> None:
        assert problems, "a refusal names at least one mistake"
        self.problems = tuple(problems)
        super().__init__(source=problems[0].source, count=len(problems), first=str(problems[0]))


class RulesVersionMismatch(JifenError):
    """`If-Match` named a rules version that is no longer the current one: someone changed
    the rules meanwhile. Read them again (GET /v1/rules), reapply your change, retry."""

    code = "rules-version-mismatch"
    status = 412
    title = {"zh-CN": "规则版本已变化", "en": "Rules version changed"}
    template = {
        "zh-CN": "If-Match 要求的规则版本是 {expected}，但当前版本是 {current_version}："
        "规则已被他人修改；请重新读取（GET /v1/rules）后再提交。",
        "en": "If-Match asked for rules version {expected} but the current version is "
        "{current_version}: the rules changed meanwhile; read them again (GET /v1/rules) "
        "and resubmit.",
    }
