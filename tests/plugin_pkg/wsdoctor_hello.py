"""A third-party wsdoctor plugin: one check and one reporter, found through the entry points its
``pyproject.toml`` declares (``wsdoctor.checks`` and ``wsdoctor.reporters``) and nothing else.

It imports only the plugin author's kit, ``wsdoctor``'s top-level names."""

from __future__ import annotations

from typing import ClassVar

from wsdoctor import Check, CheckResult, Context, Report


class HelloTarget(Check):
    """Touches no network: names the target it was given, so a test can see it ran."""

    id = "hello.target"
    title = "a third-party check that greets the target"

    async def run(self, ctx: Context) -> CheckResult:
        target = ctx.target
        return self.result(
            summary=f"hello from a plugin to {target.host}:{target.port}",
            metrics={"hello_port": target.port},
        )


CHECKS = (HelloTarget,)


class TsvReporter:
    """One tab-separated line per check: id, status, summary."""

    name: ClassVar[str] = "tsv"

    def render(self, report: Report) -> str:
        rows = ["check\tstatus\tsummary"]
        rows += [f"{r.check_id}\t{r.status.value}\t{r.summary}" for r in report.results]
        return "\n".join(rows) + "\n"
