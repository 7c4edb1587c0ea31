"""Snakemake's console for this workflow: one line per job started, one per job finished.

A Snakemake 9 logger plugin (`snakemake --logger kneurons`; the default profile turns it on).
Snakemake finds it by its module name, `snakemake_logger_plugin_*`, on sys.path: the package
sits beside `kneurons` in src/ and is installed with it. It imports nothing from `kneurons`.

What it prints in place of Snakemake's blocks (each job's input list, which holds every library
file the job imports, its resources, "Select jobs to execute...", a timestamp line per event):

    Snakemake 9.27.1 in /data/run, config config.yaml
    [22:20:13] score_neurons model=tiny method=activation layer=0 (missing output)
    [22:20:14] 5/36 done score_neurons model=tiny method=activation layer=0: <last INFO line>

the job's reason compacted to a few words (`compact_reason`), its last result line read from the
tail of its log file, and after a successful run the summary page(s) it produced. The job-stats
table, warnings, errors (a failed job's block without the library files, and its log when
`--show-failed-logs`) and every other message pass unchanged. A dry run (`-n`), `--debug-dag`
and `--logger-kneurons-full` get Snakemake's default output. Snakemake's own log file under
.snakemake/log is written by its own handler, in the default format, whatever this prints.
"""

# No `from __future__ import annotations`: Snakemake reads the settings field types as types.

import os
import re
import sys
import time
from dataclasses import dataclass, field
from logging import ERROR, WARNING, LogRecord

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

# Snakemake's plain messages that say nothing a user acts on (job selection rounds, the shell).
NOISE = ("Select jobs to execute...", "Using shell: ", "Assuming unrestricted shared filesystem")
# Resource lines kept: the parallelism of the run; not "Rules claiming more threads will be
# scaled down." nor the provided resources' reprs.
RESOURCE_LINES = ("Provided cores: ", "Provided remote nodes: ")

# The parts of Snakemake's job reason (`snakemake.jobs.Reason.__str__`, joined by "; "), each
# with its short form; a part that names files gets their count and first names.
REASONS = {
    "Missing output files: ": "missing output",
    "Incomplete output files: ": "incomplete output",
    "Updated input files: ": "input changed",
    "Input files updated by another job: ": "input rebuilt",
    "Set of input files has changed since last execution": "input set changed",
    "Code has changed since last execution": "code changed",
    "Params have changed since last execution": "settings changed",
    "Software environment definition has changed since last execution": "software env changed",
    "Forced execution": "forced",
    "Rules with neither input nor output files are always executed.": "always runs",
    "Rules with a run or shell declaration but no output are always executed.": "always runs",
    "Output file is a pipe": "pipe",
    "Job provides a service": "service",
}
_REASON_SPLIT = re.compile("; (?=" + "|".join(re.escape(p) for p in REASONS) + ")")
MAX_REASON = 120
MAX_RESULT = 100
# A line of a job's log file (`kneurons.jobs.start_job`: "%(asctime)s %(levelname)s %(message)s").
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO (.*)$")
SUMMARY_PAGE = re.compile(r"(^|/)results/[^/]+/summary/[^/]+/summary\.html$")


def is_library_file(path: str) -> bool:
    """A Python file among a job's inputs: the library modules its code imports."""
    return path.endswith(".py")


def name_files(files: list[str]) -> str:
    """'model.pt' or '3 files (model.pt, train.parquet, ...)': base names, the first two."""
    names = list(dict.fromkeys(os.path.basename(f.rstrip("/")) or f for f in files))
    if len(files) == 1:
        return names[0]
    shown = ", ".join(names[:2]) + (", ..." if len(names) > 2 else "")
    return f"{len(files)} files ({shown})"


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def compact_reason(reason: str) -> str:
    """Snakemake's reason for running a job (which lists files and whole params) in a few words:
    'missing output', 'input changed: 3 files (model.pt, ...)', 'code changed: jobs.py',
    'settings changed'; "input rebuilt" (an upstream job runs first) only where the output
    exists. A part Snakemake words otherwise is kept, shortened."""
    reason = (reason or "").strip()
    finished = reason.startswith("Finished (was: ") and reason.endswith(")")
    if finished:
        reason = reason[len("Finished (was: ") : -1]
    out: list[str] = []
    for part in _REASON_SPLIT.split(reason) if reason else []:
        prefix = next((p for p in REASONS if part.startswith(p)), None)
        if prefix is None:
            out.append(shorten(part, 60))
            continue
        short = REASONS[prefix]
        if prefix.endswith(": "):
            files = [f for f in part[len(prefix) :].split(", ") if f]
            if prefix == "Updated input files: ":
                code = [f for f in files if is_library_file(f)]
                data = [f for f in files if not is_library_file(f)]
                if data:
                    out.append(f"input changed: {name_files(data)}")
                if code:
                    out.append(f"code changed: {name_files(code)}")
                continue
            if prefix == "Input files updated by another job: " and files:
                short = f"{short}: {name_files(files)}"
        if short not in out:
            out.append(short)
    if any(o in out for o in ("missing output", "incomplete output")):
        out = [o for o in out if not o.startswith("input rebuilt")]
    text = "; ".join(out)
    return shorten(f"finished (was: {text})" if finished else text, MAX_REASON)


def format_wildcards(wildcards) -> str:
    """'model=tiny method=activation layer=0' (long values shortened)."""
    items = wildcards.items() if hasattr(wildcards, "items") else []
    return " ".join(f"{k}={shorten(str(v), 40)}" for k, v in items if not str(k).startswith("_"))


def job_label(info: dict) -> str:
    wildcards = format_wildcards(info.get("wildcards") or {})
    return f"{info.get('rule_name', '?')} {wildcards}".strip()


def last_result(log_path: str | None, rule: str | None = None, tail: int = 8192) -> str:
    """The last INFO message of a job's log file (only its last `tail` bytes are read), short;
    '' when there is none or it is the job's start line ("rule X: 1 thread(s), ...")."""
    if not log_path:
        return ""
    try:
        with open(log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - tail))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        match = _LOG_LINE.match(line)
        if match:
            message = match.group(1)
            if rule and message.startswith(f"rule {rule}: "):
                return ""
            return shorten(message, MAX_RESULT)
    return ""


def clock() -> str:
    return time.strftime("%H:%M:%S")


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    full: bool = field(
        default=False,
        metadata={"help": "Print Snakemake's default console output (every job's block)."},
    )


class LogHandler(LogHandlerBase):
    """The console stream handler; see the module docstring."""

    RED, GREEN, YELLOW = "\033[31m", "\033[32m", "\033[33m"
    RESET = "\033[0m"

    def __post_init__(self) -> None:
        from snakemake.logging import ColorizingTextHandler, DefaultFormatter

        common = self.common_settings
        self.stream = sys.stdout if getattr(common, "stdout", False) else sys.stderr
        self.snakemake_format = DefaultFormatter(common.quiet, common.show_failed_logs)
        # Snakemake's own console handler, for the runs that get its output unchanged.
        self.default = ColorizingTextHandler(
            nocolor=common.nocolor, stream=self.stream, formatter=self.snakemake_format
        )
        full = bool(getattr(self.settings, "full", False))
        self.compact = not (full or common.dryrun or common.debug_dag)
        self.color = self.default.can_color_tty() and not common.nocolor
        self.jobs: dict[int, dict] = {}  # job id -> label, rule, log file (from its job info)
        self.finished: list[int] = []  # finished jobs waiting for the progress count
        self.pages: dict[str, str] = {}  # summary pages among the jobs' outputs: abs -> as given
        self.failed = False
        self.complete = False
        self.closed = False

    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return False  # Snakemake's default filter: --quiet, --printshellcmds, --debug-dag

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False

    def emit(self, record: LogRecord) -> None:
        if not self.compact:
            self.default.emit(record)
            return
        try:
            for text, color in self.render(record):
                self.write(text, color)
        except Exception:
            self.handleError(record)

    def write(self, text: str, color: str | None = None) -> None:
        if self.color and color:
            text = f"{color}{text}{self.RESET}"
        self.stream.write(text + "\n")
        self.stream.flush()

    def render(self, record: LogRecord) -> list[tuple[str, str | None]]:
        """The lines (text, colour) for one record."""
        event = getattr(record, "event", None)
        data = record.__dict__
        if record.levelno >= ERROR:
            self.failed = True
        if event == LogEvent.JOB_FINISHED:
            self.finished.append(data.get("job_id"))
            return []
        if event == LogEvent.PROGRESS:
            done, total = data.get("done"), data.get("total")
            self.complete = bool(total) and done == total
            return self.flush_finished(done, total)
        lines = self.flush_finished()  # a finished job without its progress count (not seen)
        if event == LogEvent.WORKFLOW_STARTED:
            return lines + [(self.header(data), None)]
        if event == LogEvent.JOB_INFO:
            return lines + [(self.job_started(data), None)]
        if event == LogEvent.JOB_ERROR:
            self.failed = True
            return lines + [(self.job_error(data), self.RED)]
        if event == LogEvent.SHELLCMD:
            cmd = data.get("shellcmd") or data.get("cmd")
            return lines + ([(f"    {cmd.strip()}", self.YELLOW)] if cmd else [])
        if event == LogEvent.JOB_STARTED:
            return lines  # "Execute N jobs..."
        message = record.getMessage()
        if event == LogEvent.RESOURCES_INFO and not message.startswith(RESOURCE_LINES):
            return lines
        if event in (LogEvent.GROUP_INFO, LogEvent.GROUP_ERROR, LogEvent.DEBUG_DAG):
            message = self.snakemake_format.format(record)
        if message in ("", "None") or (event is None and message.startswith(NOISE)):
            return lines
        return lines + [(message, self.level_color(record))]

    def level_color(self, record: LogRecord) -> str | None:
        if record.levelno >= ERROR:
            return self.RED
        return self.YELLOW if record.levelno >= WARNING else None

    def header(self, data: dict) -> str:
        configs = ", ".join(str(c) for c in data.get("configfiles") or []) or "none"
        return (
            f"Snakemake {data.get('snakemake_version', '')} in {data.get('cwd', os.getcwd())}, "
            f"config {configs}"
        )

    def job_started(self, data: dict) -> str:
        jobid = data.get("jobid")
        log = [str(f) for f in data.get("log") or []]
        label = job_label(data)
        self.jobs[jobid] = {
            "label": label,
            "rule": data.get("rule_name"),
            "log": os.path.abspath(log[0]) if log else None,
        }
        for out in data.get("output") or []:
            if SUMMARY_PAGE.search(str(out)):
                self.pages[os.path.abspath(str(out))] = str(out)
        message = f": {data['rule_msg']}" if data.get("rule_msg") else ""
        reason = compact_reason(str(data.get("reason") or ""))
        line = f"[{clock()}] {label}{message}" + (f" ({reason})" if reason else "")
        return "    " + line if data.get("indent") else line

    def flush_finished(self, done=None, total=None) -> list[tuple[str, str | None]]:
        count = f"{done}/{total} done " if done is not None and total else "done "
        lines = []
        for jobid in self.finished:
            job = self.jobs.get(jobid, {"label": f"job {jobid}", "rule": None, "log": None})
            result = last_result(job["log"], job["rule"])
            text = f"[{clock()}] {count}{job['label']}" + (f": {result}" if result else "")
            lines.append((text, self.GREEN))
        self.finished = []
        return lines

    def job_error(self, data: dict) -> str:
        """Snakemake's block for a failed job without the library files among its inputs."""
        from snakemake.logging import show_logs

        wildcards = format_wildcards(data.get("wildcards") or {})
        head = f"[{clock()}] Error in rule {data.get('rule_name')}, jobid {data.get('jobid')}"
        lines = [head + (f" ({wildcards})" if wildcards else "") + ":"]
        if data.get("rule_msg"):
            lines.append(f"    message: {data['rule_msg']}")
        inputs = [str(f) for f in data.get("input") or []]
        data_inputs = [f for f in inputs if not is_library_file(f)]
        if inputs:
            library = len(inputs) - len(data_inputs)
            extra = f" (and {library} library files)" if library else ""
            lines.append(f"    input: {', '.join(data_inputs) or '-'}{extra}")
        if data.get("output"):
            lines.append(f"    output: {', '.join(map(str, data['output']))}")
        logs = [str(f) for f in data.get("log") or []]
        if logs:
            lines.append(f"    log: {', '.join(logs)} (check log file(s) for error details)")
        if data.get("conda_env"):
            lines.append(f"    conda-env: {data['conda_env']}")
        if data.get("shellcmd"):
            lines.append(f"    shell:\n        {data['shellcmd']}")
            lines.append("        (command exited with non-zero exit code)")
        for key, value in (data.get("aux") or {}).items():
            lines.append(f"    {key}: {value}")
        if self.common_settings.show_failed_logs and logs:
            lines.extend(show_logs(logs))
        return "\n".join(lines)

    def open_lines(self) -> list[str]:
        """After a successful run, the summary pages its jobs wrote (those that exist)."""
        pages = []
        for path, given in sorted(self.pages.items()):
            if os.path.exists(path):
                here = os.path.abspath(given) == path
                pages.append(given if here else path)
        if not pages:
            return []
        report = "All results in one report: add --report report.html to this command."
        return [report] + [f"Open {page}" for page in pages]

    def close(self) -> None:
        if self.compact and not self.closed:
            self.closed = True
            try:
                for text, color in self.flush_finished():
                    self.write(text, color)
                if self.complete and not self.failed:
                    for line in self.open_lines():
                        self.write(line, self.GREEN)
            except Exception:
                pass
        super().close()
