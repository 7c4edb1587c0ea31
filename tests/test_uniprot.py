"""UniProt download (kneurons.data.uniprot) against a local server that plays UniProt's REST API.

All offline: pytest-httpserver answers `/uniprotkb/search` with UniProt's headers
(X-Total-Results, X-UniProt-Release, Link rel="next"), gzip transfer, and the failures a real
download meets: 500s, a 429 with Retry-After, a timeout, a stream cut short, an HTML page.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from werkzeug import Request, Response
from workflow_helpers import schema_defaults

from kneurons.data.tsv import read_uniprot_tsv
from kneurons.data.uniprot import (
    DEFAULT_FIELDS,
    FIRST_CONTACT_RETRIES,
    UniProtError,
    UniProtRequest,
    _Client,
    _torch_checkpoints,
    download,
    offline_hint,
    request_from_config,
)
from kneurons.io import file_sha256

REPO = Path(__file__).resolve().parents[1]
HEADER = "Entry\tEC number\tSequence\tLength\tOrganism\tProtein names"
RELEASE = "2025_01"


def row(accession: str, ec: str, sequence: str = "MKVLAAGIWWRT" * 4) -> str:
    return f"{accession}\t{ec}\t{sequence}\t{len(sequence)}\tHomo sapiens\tSome enzyme"


ROWS = [row(f"P{i:05d}", f"{i % 3 + 1}.1.1.{i}") for i in range(7)]


class FakeUniProt:
    """A handler for /uniprotkb/search: pages with a numeric cursor, faults served first.

    `rows_for(query)` picks the rows of a query: per-class queries `(...) AND (ec:N.*)` get the
    rows whose EC numbers include class N, like UniProt's search.
    """

    def __init__(self, rows=ROWS, faults=(), total=None, gzip_body=True, cut_at=None):
        self.rows, self.faults, self.total = list(rows), list(faults), total
        self.gzip_body, self.cut_at = gzip_body, cut_at
        self.releases = [RELEASE]  # one per page; the last one repeats
        self.requests: list[Request] = []

    def rows_for(self, query: str) -> list[str]:
        if "(ec:" not in query:
            return self.rows
        cls = query.rsplit("(ec:", 1)[1].split(".")[0]
        return [
            r
            for r in self.rows
            if any(ec.startswith(f"{cls}.") for ec in r.split("\t")[1].split("; "))
        ]

    def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        if self.faults:
            fault = self.faults.pop(0)
            return fault if isinstance(fault, Response) else fault(request)
        args = request.args
        rows = self.rows_for(args["query"])
        start, size = int(args.get("cursor", 0)), int(args["size"])
        release = self.releases.pop(0) if len(self.releases) > 1 else self.releases[0]
        headers = {
            "X-Total-Results": str(self.total if self.total is not None else len(rows)),
            "X-UniProt-Release": release,
            "X-UniProt-Release-Date": "05-February-2025",
            "Content-Type": "text/plain;format=tsv",
        }
        if start + size < len(rows):
            params = {k: args[k] for k in ("query", "format", "fields", "size")}
            query = urlencode({**params, "cursor": start + size})
            headers["Link"] = f'<{request.host_url}uniprotkb/search?{query}>; rel="next"'
        body = ("\n".join([HEADER, *rows[start : start + size]]) + "\n").encode()
        if start == self.cut_at:  # the connection drops after half the page
            headers["Content-Length"] = str(len(body))
            half = body[: len(body) // 2]
            return Response(iter([half]), headers=headers, direct_passthrough=True)
        if self.gzip_body:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return Response(body, status=200, headers=headers)


@pytest.fixture
def serve(httpserver):
    """serve(fake) -> a fast-retrying request against the local server."""

    def start(fake: FakeUniProt, **changes) -> UniProtRequest:
        httpserver.expect_request("/uniprotkb/search").respond_with_handler(fake)
        settings = {"base_url": httpserver.url_for("/"), "page_size": 3, "backoff_factor": 0.01}
        return UniProtRequest(**{**settings, **changes})

    return start


def downloaded_rows(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode().splitlines()


def assert_nothing_left(folder: Path):
    assert list(folder.iterdir()) == []


# --- success ---------------------------------------------------------------------------------


def test_download_pages_headers_manifest(serve, tmp_path):
    fake = FakeUniProt()
    request = serve(fake)
    dest = tmp_path / "uniprot.tsv.gz"
    manifest = download(request, dest)

    assert downloaded_rows(dest) == [HEADER, *ROWS]
    assert len(fake.requests) == 3  # 7 rows, 3 per page
    first = fake.requests[0]
    assert first.args["query"] == "reviewed:true AND ec:*"
    assert first.args["fields"] == ",".join(DEFAULT_FIELDS)
    assert first.args["format"] == "tsv"
    assert "gzip" in first.headers["Accept-Encoding"]
    assert [r.args.get("cursor") for r in fake.requests] == [None, "3", "6"]
    assert manifest["rows"] == 7
    assert manifest["release"] == RELEASE
    assert manifest["release_date"] == "05-February-2025"
    assert manifest["query"] == "reviewed:true AND ec:*"
    assert manifest["queries"] == [
        {"ec_class": None, "query": request.query, "total_results": 7, "rows": 7, "new_rows": 7}
    ]
    assert manifest["sha256"] == file_sha256(dest)
    assert manifest["downloaded"].endswith("+00:00")
    table = read_uniprot_tsv(dest)
    assert table["accession"].tolist() == [f"P{i:05d}" for i in range(7)]


def test_download_is_byte_identical_when_repeated(serve, tmp_path):
    request = serve(FakeUniProt(gzip_body=False))
    a = download(request, tmp_path / "a.tsv.gz")
    b = download(request, tmp_path / "b.tsv.gz")
    assert a["sha256"] == b["sha256"]


def test_500_then_success_is_retried(serve, tmp_path):
    fake = FakeUniProt(faults=[Response("oops", status=500), Response("oops", status=502)])
    manifest = download(serve(fake), tmp_path / "u.tsv.gz")
    assert manifest["rows"] == 7
    assert len(fake.requests) == 2 + 3


def test_429_waits_for_retry_after(serve, tmp_path):
    busy = Response("slow down", status=429, headers={"Retry-After": "1"})
    fake = FakeUniProt(faults=[busy])
    started = time.monotonic()
    manifest = download(serve(fake, backoff_factor=0), tmp_path / "u.tsv.gz")
    assert time.monotonic() - started >= 1.0
    assert manifest["rows"] == 7 and len(fake.requests) == 4


def test_timeout_is_retried(serve, tmp_path):
    def slow(request):
        time.sleep(1.0)
        return Response("late", status=200)

    fake = FakeUniProt(faults=[slow])
    manifest = download(serve(fake, timeout=0.3), tmp_path / "u.tsv.gz")
    assert manifest["rows"] == 7


def test_per_class_cap_runs_one_query_per_class(serve, tmp_path):
    rows = [row("AB", "1.2.3.4; 2.7.1.1")]  # found by both class queries, written once
    rows += [row(f"A{i}", "1.1.1.1") for i in range(5)] + [
        row(f"B{i}", "2.7.1.1") for i in range(4)
    ]
    fake = FakeUniProt(rows=rows)
    request = serve(fake, per_class_cap=3, page_size=2, classes=("1", "2"))
    dest = tmp_path / "u.tsv.gz"
    manifest = download(request, dest)

    queries = [r.args["query"] for r in fake.requests if "cursor" not in r.args]
    assert queries == [
        "(reviewed:true AND ec:*) AND (ec:1.*)",
        "(reviewed:true AND ec:*) AND (ec:2.*)",
    ]
    assert len(fake.requests) == 4  # 2 pages of 2 per class, the second cut to 1 row
    assert {r.args["size"] for r in fake.requests} == {"2"}
    assert [q["total_results"] for q in manifest["queries"]] == [6, 5]
    assert [q["rows"] for q in manifest["queries"]] == [3, 3]
    assert [q["new_rows"] for q in manifest["queries"]] == [3, 2]
    accessions = [line.split("\t")[0] for line in downloaded_rows(dest)[1:]]
    assert accessions == ["AB", "A0", "A1", "B0", "B1"]
    assert manifest["rows"] == 5 and manifest["per_class_cap"] == 3


# --- failures: one line, nothing left behind ------------------------------------------------


def test_stream_cut_short_by_row_count(serve, tmp_path):
    request = serve(FakeUniProt(rows=ROWS[:5], total=7))
    with pytest.raises(UniProtError, match=r"received 5 of 7 rows .*cut short"):
        download(request, tmp_path / "u.tsv.gz")
    assert_nothing_left(tmp_path)


def test_stream_cut_short_mid_body(serve, tmp_path):
    request = serve(FakeUniProt(cut_at=3))  # the second page
    with pytest.raises(UniProtError, match="cut short") as err:
        download(request, tmp_path / "u.tsv.gz")
    assert "\n" not in str(err.value)
    assert_nothing_left(tmp_path)


def test_broken_row_in_a_page(serve, tmp_path):
    request = serve(FakeUniProt(rows=[*ROWS[:2], "P99999\t1.1.1.1", *ROWS[2:]], total=8))
    with pytest.raises(UniProtError, match="line 4 has 2 fields"):
        download(request, tmp_path / "u.tsv.gz")
    assert_nothing_left(tmp_path)


def test_persistent_503_gives_up(serve, tmp_path):
    fake = FakeUniProt(faults=[Response("down", status=503)] * 3)
    with pytest.raises(UniProtError, match=r"still failing after retries \(too many 503"):
        download(serve(fake, retries=2), tmp_path / "u.tsv.gz")
    assert len(fake.requests) == 3
    assert_nothing_left(tmp_path)


def test_bad_query_reports_uniprots_message(serve, tmp_path):
    message = json.dumps({"url": "x", "messages": ["'foo' is not a valid search field"]})
    fake = FakeUniProt(faults=[Response(message, status=400, content_type="application/json")])
    with pytest.raises(UniProtError, match=r"HTTP 400: 'foo' is not a valid search field"):
        download(serve(fake), tmp_path / "u.tsv.gz")
    assert_nothing_left(tmp_path)


def test_html_page_instead_of_tsv(serve, tmp_path):
    page = Response("<!DOCTYPE html><html>maintenance</html>", content_type="text/html")
    with pytest.raises(UniProtError, match="HTML page instead of TSV"):
        download(serve(FakeUniProt(faults=[page])), tmp_path / "u.tsv.gz")
    assert_nothing_left(tmp_path)


def test_missing_total_results_header(serve, tmp_path):
    bare = Response(HEADER + "\n" + ROWS[0] + "\n")
    with pytest.raises(UniProtError, match="without X-Total-Results"):
        download(serve(FakeUniProt(faults=[bare])), tmp_path / "u.tsv.gz")


def test_release_change_between_pages(serve, tmp_path):
    fake = FakeUniProt()
    fake.releases = [RELEASE, "2025_02"]
    with pytest.raises(UniProtError, match="release changed during the download"):
        download(serve(fake), tmp_path / "u.tsv.gz")
    assert_nothing_left(tmp_path)


def test_empty_result_is_an_error(serve, tmp_path):
    with pytest.raises(UniProtError, match="returned no rows"):
        download(serve(FakeUniProt(rows=[])), tmp_path / "u.tsv.gz")
    assert_nothing_left(tmp_path)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_offline_line(message: str, url: str):
    assert message.startswith(f"cannot reach {url}/uniprotkb/search (")
    assert "--config 'data={input: path/to/file.tsv}'" in message
    assert "hub/checkpoints/<name>.pt" in message
    assert message.endswith("--configfile config/synthetic.yaml")
    assert "\n" not in message


def test_offline_stops_fast_with_the_defaults(tmp_path):
    """Nothing listens: with the default retries (5) and backoff (1.0), a first contact is
    tried 3 times, 0 + 2 s apart (measured: 2.0 s; a name that does not resolve: the same)."""
    url = f"http://127.0.0.1:{closed_port()}"
    request = UniProtRequest(base_url=url)
    assert (request.retries, request.backoff_factor) == (5, 1.0)
    started = time.monotonic()
    with pytest.raises(UniProtError) as err:
        download(request, tmp_path / "u.tsv.gz")
    assert time.monotonic() - started < 10
    assert_offline_line(str(err.value), url)
    assert re.search(r"\(NewConnectionError, 3 attempts in \d+ s\)", str(err.value))
    assert_nothing_left(tmp_path)


def test_unanswered_connect_stops_after_three_connect_timeouts(tmp_path):
    """Packets dropped (a full listen backlog here): 3 x connect_timeout + 2 s of backoff."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):  # fills the backlog
            url = f"http://127.0.0.1:{port}"
            started = time.monotonic()
            with pytest.raises(UniProtError) as err:
                download(UniProtRequest(base_url=url, connect_timeout=0.3), tmp_path / "u.gz")
            elapsed = time.monotonic() - started
    assert 2.5 < elapsed < 6
    assert_offline_line(str(err.value), url)
    assert "ConnectTimeoutError, 3 attempts" in str(err.value)


def test_full_retries_once_uniprot_has_answered():
    client = _Client.for_request(UniProtRequest(retries=5))
    first = client.first.get_adapter("https://x").max_retries
    rest = client.rest.get_adapter("https://x").max_retries
    assert first.connect == FIRST_CONTACT_RETRIES == 2 and first.status == first.read == 5
    assert rest.connect == rest.status == rest.read == 5
    assert client.attempts == 3
    assert _Client.for_request(UniProtRequest(retries=1)).attempts == 2


def test_offline_hint_names_the_torch_hub_cache(monkeypatch):
    """The folder torch.hub.get_dir() gives (without importing torch in kneurons.data.uniprot)."""
    import torch

    def hub_checkpoints() -> str:
        return os.path.join(torch.hub.get_dir(), "checkpoints")

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("TORCH_HOME", raising=False)
    assert "~/.cache/torch/hub/checkpoints/<name>.pt" in offline_hint()
    assert os.path.expanduser(_torch_checkpoints()) == hub_checkpoints()
    for variable, value in (("XDG_CACHE_HOME", "/cache"), ("TORCH_HOME", "/models/torch")):
        monkeypatch.setenv(variable, value)
        assert f"{hub_checkpoints()}/<name>.pt" in offline_hint()


# --- config ----------------------------------------------------------------------------------


def test_request_from_config():
    request = request_from_config(
        {"query": "reviewed:true", "fields": ["sequence", "ft_binding"], "per_class_cap": None},
        classes=[1, 3],
    )
    assert request.fields == ("accession", "ec", "sequence", "ft_binding")
    assert request.classes == ("1", "3") and request.per_class_cap is None
    assert request.queries() == [(None, "reviewed:true", None)]
    capped = request_from_config({"per_class_cap": 50}, classes=None)
    assert [q[0] for q in capped.queries()] == ["1", "2", "3", "4", "5", "6", "7"]
    assert capped.queries()[0] == ("1", "(reviewed:true AND ec:*) AND (ec:1.*)", 50)
    with pytest.raises(UniProtError, match="unknown key.*querry"):
        request_from_config({"querry": "x"})
    with pytest.raises(UniProtError, match="page_size"):
        request_from_config({"page_size": 501})


def test_request_defaults_are_the_schemas():
    config = schema_defaults()
    assert request_from_config(config["data"]["uniprot"]) == UniProtRequest()


# --- the workflow ----------------------------------------------------------------------------


def run_snakemake(workdir: Path, config: dict, *targets: str, dry: bool = False):
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    cmd = [snakemake, *targets, "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    cmd += ["--cores", "1", "--configfile", str(workdir / "config.yaml")]
    if dry:
        cmd.append("-n")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def tiny_config() -> dict:
    config = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    config["data"]["input"] = str(REPO / config["data"]["input"])
    return config


def test_fetch_rule_only_without_data_input(tmp_path):
    local = run_snakemake(tmp_path, tiny_config(), "results/tiny/data/train.parquet", dry=True)
    assert local.returncode == 0, local.stderr[-2000:]
    assert "fetch_uniprot" not in local.stdout

    config = tiny_config()
    config["data"]["input"] = None
    download_dag = run_snakemake(tmp_path, config, "results/tiny/data/train.parquet", dry=True)
    assert download_dag.returncode == 0, download_dag.stderr[-2000:]
    assert "rule fetch_uniprot" in download_dag.stdout


def test_fetch_rule_downloads_and_the_card_names_the_release(httpserver, tmp_path):
    from make_tiny_tsv import write_uniprot_tsv

    lines = write_uniprot_tsv(tmp_path / "tiny.tsv").read_text().splitlines()
    columns = lines[0].split("\t")
    order = [columns.index(c) for c in ("Entry", "EC number", "Sequence")]
    rows = []
    for line in lines[1:]:
        entry, ec, sequence = (line.split("\t")[i] for i in order)
        rows.append("\t".join([entry, ec, sequence, str(len(sequence)), "Homo sapiens", "x"]))
    fake = FakeUniProt(rows=rows)
    httpserver.expect_request("/uniprotkb/search").respond_with_handler(fake)
    config = tiny_config()
    config["data"]["input"] = None
    config["data"]["uniprot"] = {"base_url": httpserver.url_for("/"), "backoff_factor": 0.01}
    workdir = tmp_path / "run"
    workdir.mkdir()
    run = run_snakemake(workdir, config, "results/tiny/data/dataset_card.json")
    assert run.returncode == 0, run.stderr[-3000:]

    manifest = json.loads((workdir / "results/tiny/data/uniprot_manifest.json").read_text())
    assert manifest["rows"] == len(rows) and manifest["release"] == RELEASE
    card = json.loads((workdir / "results/tiny/data/dataset_card.json").read_text())
    assert card["source"]["type"] == "uniprot"
    assert card["source"]["release"] == RELEASE
    assert card["n_input_rows"] == len(rows) == card["n_kept"] + card["n_dropped"]
    # the download's progress (kneurons.progress) reaches the job's log file
    log = (workdir / "logs/tiny/fetch_uniprot.log").read_text()
    assert f"UniProt: done, {len(rows)} rows in " in log


def test_fetch_rule_offline_is_one_line(tmp_path):
    config = tiny_config()
    config["data"]["input"] = None
    config["data"]["uniprot"] = {
        "base_url": f"http://127.0.0.1:{closed_port()}",
        "retries": 1,
        "backoff_factor": 0.01,
    }
    run = run_snakemake(tmp_path, config, "results/tiny/data/uniprot.tsv.gz")
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error in rule")]
    assert errors[0].startswith("Error in rule fetch_uniprot: cannot reach http://127.0.0.1:")
    assert errors[0].endswith("--configfile config/synthetic.yaml")
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "results/tiny/data/uniprot.tsv.gz").exists()
