"""A deterministic corpus of chat messages: Chinese, English, code, tables, logs, mixed.

Compression ratios depend on the text, so the benchmark needs text shaped like what a
chat server stores, without downloading anything. Sources:

- English prose: docstrings of Python's standard library (real sentences, fixed for a
  given Python version);
- Python code: source of standard-library functions;
- Chinese: sentences built from a built-in list of common words and phrases;
- JavaScript, markdown tables and log excerpts: small built-in generators.

Every message is built from a seeded ``random.Random``: the same seed and Python version
give byte-identical text. ``python bench/corpus.py`` prints what the corpus holds.
"""

# ruff: noqa: RUF001 - Chinese text uses full-width punctuation on purpose

from __future__ import annotations

import argparse
import importlib
import inspect
import random
import textwrap
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

SEED = 20261204
DEFAULT_SIZE = 400

# Standard-library modules whose docstrings and functions give real prose and code.
PROSE_MODULES = (
    "argparse",
    "asyncio.tasks",
    "collections",
    "datetime",
    "email.message",
    "functools",
    "http.client",
    "json",
    "logging",
    "pathlib",
    "shutil",
    "subprocess",
    "tarfile",
    "textwrap",
    "threading",
    "unittest.case",
    "urllib.parse",
    "zipfile",
)
CODE_MODULES = (
    "argparse",
    "csv",
    "difflib",
    "json.decoder",
    "json.encoder",
    "pathlib",
    "shutil",
    "string",
    "textwrap",
    "urllib.parse",
)

# Common words and phrases of technical chat in Chinese; sentences are drawn from them.
_CHINESE_TEXT = (
    "我们 你们 他们 这个 那个 什么 为什么 怎么 如果 因为 所以 但是 而且 或者 虽然 然后 已经 "
    "可以 需要 应该 可能 一定 非常 比较 特别 重要 问题 方法 系统 数据 服务器 数据库 客户端 "
    "用户 接口 函数 参数 变量 类型 对象 列表 字典 字符串 文件 目录 配置 环境 版本 更新 安装 "
    "部署 运行 测试 调试 错误 异常 日志 性能 内存 缓存 网络 请求 响应 连接 超时 线程 进程 "
    "并发 异步 同步 队列 事务 索引 查询 表格 字段 主键 外键 迁移 备份 恢复 压缩 加密 解密 "
    "安全 权限 登录 注册 密码 会话 模型 上下文 令牌 流式 输出 输入 结果 示例 代码 模块 框架 "
    "项目 功能 需求 设计 架构 实现 优化 重构 文档 说明 步骤 首先 其次 最后 总之 例如 也就是说 "
    "换句话说 需要注意的是 一般来说 在这种情况下 这样做的好处是 另一方面 具体来说 简单来说 "
    "时间 空间 复杂度 算法 排序 搜索 递归 循环 条件 分支 返回 调用 定义 继承 封装 多态 "
    "中文 英文 字符 编码 解码 长度 大小 字节 单位 比例 速度 效率 稳定 可靠 简单 复杂 "
    "今天 明天 上午 下午 工作 学习 生活 朋友 公司 团队 老师 学生 北京 上海 中国 世界 "
    "天气 旅行 计划 建议 经验 原因 影响 解决 处理 分析 检查 确认 修改 删除 添加 保存"
)
CHINESE_WORDS = tuple(_CHINESE_TEXT.split())
CHINESE_ENDINGS = ("。", "。", "。", "？", "！", "；", "。")
CHINESE_JOINERS = ("，", "，", "、", "", "", "")

_JS_TEXT = (
    "user message session model token stream buffer response request element button "
    "config options result items index count total value chunk reader decoder payload "
    "status error timeout controller signal handler listener container"
)
JS_NAMES = tuple(_JS_TEXT.split())
LOG_LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARNING", "ERROR")
LOG_EVENTS = (
    "GET /chats/{n}/ 200 {ms}ms",
    "POST /chats/{n}/send/ 200 {ms}ms",
    "upstream stream started model=gpt-4o-mini message={n}",
    "upstream stream finished tokens={ms} finish_reason=stop",
    "database is busy, retrying in {ms} ms (attempt {k})",
    "cache miss key=system-setting:v1",
    "worker {k} booted pid={n}",
    'Traceback (most recent call last): File "/app/chat/views.py", line {k}, in post',
    "ConnectionResetError: [Errno 104] Connection reset by peer",
    "slow query {ms}ms: SELECT id, token_count FROM chat_message WHERE session_id = {n}",
)


@dataclass(frozen=True)
class Sample:
    kind: str  # what the message imitates, for the per-kind summary
    text: str


def _prose_sentences() -> list[str]:
    """Sentences from standard-library docstrings (modules, classes and functions)."""
    sentences: list[str] = []
    for name in PROSE_MODULES:
        module = importlib.import_module(name)
        docs = [module.__doc__ or ""]
        for _member_name, member in sorted(vars(module).items()):
            doc = getattr(member, "__doc__", None)
            if (inspect.isfunction(member) or inspect.isclass(member)) and isinstance(doc, str):
                docs.append(doc)
        for doc in docs:
            flat = " ".join(inspect.cleandoc(doc).split())
            sentences += [s.strip() + "." for s in flat.split(". ") if len(s.split()) >= 5]
    return sentences


def _code_snippets() -> list[str]:
    """Source of standard-library functions of 5 to 80 lines."""
    snippets: list[str] = []
    for name in CODE_MODULES:
        module = importlib.import_module(name)
        for _member_name, member in sorted(vars(module).items()):
            if inspect.isfunction(member) and member.__module__ == module.__name__:
                try:
                    source = textwrap.dedent(inspect.getsource(member))
                except (OSError, TypeError):
                    continue
                if 5 <= source.count("\n") <= 80:
                    snippets.append(source.rstrip())
    return snippets


class CorpusBuilder:
    """Builds messages from a seeded generator and the standard-library sources above."""

    def __init__(self, seed: int = SEED) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - deterministic test data, not secrets
        self.sentences = _prose_sentences()
        self.snippets = _code_snippets()

    # -- pieces --------------------------------------------------------------------------

    def english(self, sentences: int) -> str:
        start = self.rng.randrange(len(self.sentences) - sentences)
        return " ".join(self.sentences[start : start + sentences])

    def chinese(self, sentences: int) -> str:
        out = []
        for _ in range(sentences):
            words = self.rng.choices(CHINESE_WORDS, k=self.rng.randint(6, 22))
            body = "".join(w + self.rng.choice(CHINESE_JOINERS) for w in words).rstrip("，、")
            out.append(body + self.rng.choice(CHINESE_ENDINGS))
        return "".join(out)

    def python(self) -> str:
        return "```python\n" + self.rng.choice(self.snippets) + "\n```"

    def javascript(self) -> str:
        rng, names = self.rng, JS_NAMES
        lines = []
        for _ in range(rng.randint(1, 4)):
            fn, arg, local = rng.choice(names), rng.choice(names), rng.choice(names)
            lines += [
                f"export async function {fn}{rng.choice(names).title()}({arg}, options = {{}}) {{",
                f"  const {local} = await fetch(`/api/{fn}/${{{arg}.id}}`, {{",
                "    method: 'POST',",
                "    headers: { 'Content-Type': 'application/json' },",
                f"    body: JSON.stringify({{ {arg}, limit: {rng.randint(1, 500)} }}),",
                "  });",
                f"  if (!{local}.ok) throw new Error(`{fn} failed: ${{{local}.status}}`);",
                f"  for (const {rng.choice(names)} of (await {local}.json()).items) {{",
                f"    options.on{rng.choice(names).title()}?.({arg});",
                "  }",
                f"  return {local};",
                "}",
                "",
            ]
        return "```js\n" + "\n".join(lines).rstrip() + "\n```"

    def table(self) -> str:
        rng = self.rng
        columns = rng.sample(["名称", "name", "version", "大小", "ms", "ratio", "状态", "notes"], 4)
        rows = [
            "| " + " | ".join(columns) + " |",
            "|" + " --- |" * len(columns),
        ]
        for _ in range(rng.randint(3, 12)):
            cells = [
                rng.choice(
                    [
                        str(rng.randint(0, 99999)),
                        f"{rng.random() * 100:.2f}",
                        rng.choice(CHINESE_WORDS),
                        rng.choice(JS_NAMES),
                    ]
                )
                for _ in columns
            ]
            rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows)

    def log(self, lines: int) -> str:
        rng = self.rng
        out = []
        for i in range(lines):
            event = rng.choice(LOG_EVENTS).format(
                n=rng.randint(1, 99999), ms=rng.randint(1, 3000), k=rng.randint(1, 9)
            )
            stamp = f"2026-12-04 16:{(i // 60) % 60:02d}:{i % 60:02d},{rng.randint(0, 999):03d}"
            out.append(f"{stamp} {rng.choice(LOG_LEVELS):7} parley.{rng.choice(JS_NAMES)}: {event}")
        return "```\n" + "\n".join(out) + "\n```"

    def bullets(self, chinese: bool) -> str:
        count = self.rng.randint(3, 7)
        make = (lambda: self.chinese(1)) if chinese else (lambda: self.english(1))
        return "\n".join(f"{i + 1}. {make()}" for i in range(count))

    # -- whole messages ------------------------------------------------------------------

    def question(self) -> Sample:
        if self.rng.random() < 0.5:
            return Sample("question-zh", self.chinese(self.rng.randint(1, 4)))
        return Sample("question-en", self.english(self.rng.randint(1, 4)))

    def answer(self) -> Sample:
        rng = self.rng
        chinese = rng.random() < 0.5
        prose = (lambda n: self.chinese(n)) if chinese else (lambda n: self.english(n))
        parts = [prose(rng.randint(1, 4))]
        for _ in range(rng.randint(1, 5)):
            piece = rng.choice(["prose", "prose", "python", "js", "bullets", "table", "mixed"])
            if piece == "prose":
                parts.append(prose(rng.randint(2, 8)))
            elif piece == "python":
                parts.append(self.python())
            elif piece == "js":
                parts.append(self.javascript())
            elif piece == "bullets":
                parts.append(self.bullets(chinese))
            elif piece == "table":
                parts.append(self.table())
            else:  # Chinese explanation quoting English terms, or the other way round
                parts.append(self.chinese(2) + " " + self.english(2) + " " + self.chinese(1))
        return Sample("answer-zh" if chinese else "answer-en", "\n\n".join(parts))

    def paste(self) -> Sample:
        rng = self.rng
        kind = rng.choice(["paste-code", "paste-code", "paste-log"])
        if kind == "paste-log":
            return Sample(kind, self.log(rng.randint(15, 120)))
        return Sample(
            kind,
            self.english(1) + "\n\n" + "\n\n".join(self.python() for _ in range(rng.randint(1, 6))),
        )

    def reasoning(self) -> Sample:
        chinese = self.rng.random() < 0.4
        count = self.rng.randint(4, 30)
        text = self.chinese(count) if chinese else self.english(count)
        return Sample("reasoning", text)

    def sample(self) -> Sample:
        makers: list[tuple[float, Callable[[], Sample]]] = [
            (0.35, self.question),
            (0.40, self.answer),
            (0.12, self.paste),
            (0.13, self.reasoning),
        ]
        roll = self.rng.random()
        for weight, make in makers:
            if roll < weight:
                return make()
            roll -= weight
        return self.answer()


def build_corpus(size: int = DEFAULT_SIZE, *, seed: int = SEED) -> list[Sample]:
    """``size`` messages, the same text for the same seed and Python version."""
    builder = CorpusBuilder(seed)
    return [builder.sample() for _ in range(size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--show", type=int, default=0, help="print the first N messages")
    args = parser.parse_args()
    corpus = build_corpus(args.size, seed=args.seed)
    sizes = Counter()
    counts = Counter(s.kind for s in corpus)
    for s in corpus:
        sizes[s.kind] += len(s.text.encode())
    total = sum(sizes.values())
    print(f"{len(corpus)} messages, {total / 1024:.0f} KiB UTF-8 (seed {args.seed})")
    for kind in sorted(counts):
        print(f"  {kind:12} {counts[kind]:4} messages {sizes[kind] / 1024:8.1f} KiB")
    for s in corpus[: args.show]:
        print(f"\n--- {s.kind} ---\n{s.text}")


if __name__ == "__main__":
    main()
