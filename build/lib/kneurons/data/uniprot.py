"""Download a UniProtKB query as a TSV.gz, completely or not at all.

Uses the paged `uniprotkb/search` endpoint (500 rows a page, `Link: <...>; rel="next"`) rather
than `stream`: every page carries `X-Total-Results` and the release headers, and an optional
per-class cap becomes one query per EC class that stops after `per_class_cap` rows. Transient
failures (connection errors, timeouts, 429 with its Retry-After, 5xx) are retried with
exponential backoff by urllib3's `Retry`; anything else, and a download whose row count differs
from `X-Total-Results`, is a `UniProtError` (one line) and leaves no file behind.

Offline, the download stops fast: until UniProt has answered once, a connection that cannot be
made (name resolution, refused, no answer within `connect_timeout`) is retried only
`FIRST_CONTACT_RETRIES` times, and the error says how to run without the network
(`offline_hint`). With the defaults that is 3 attempts and 0 + 2 s of backoff (urllib3 sleeps
0, 2, 4, 8 ... s x `backoff_factor` between attempts): about 2 s when the name does not
resolve, at most 3 x 10 + 2 s when packets are dropped. Once UniProt has answered, every
failure gets the full `retries` (waits 0 + 2 + 4 + 8 + 16 s with the defaults).
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError
from urllib3.util.retry import Retry

from kneurons import __version__
from kneurons.data.options import EC_CLASSES
from kneurons.errors import DataError
from kneurons.io import atomic_path, file_sha256
from kneurons.progress import Progress

BASE_URL = "https://rest.uniprot.org"
DEFAULT_QUERY = "reviewed:true AND ec:*"
# UniProt return fields; their TSV headers are Entry, EC number, Sequence, Length, Organism,
# Protein names (ft_act_site: Active site, ft_binding: Binding site).
REQUIRED_FIELDS = ("accession", "ec", "sequence")
DEFAULT_FIELDS = (*REQUIRED_FIELDS, "length", "organism_name", "protein_name")
RETRY_STATUS = (429, 500, 502, 503, 504)
MAX_PAGE_SIZE = 500  # UniProt's limit for `size`
# Connection retries before UniProt has answered once (then `retries`): offline fails fast.
FIRST_CONTACT_RETRIES = 2

_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')

log = logging.getLogger(__name__)


class UniProtError(DataError):
    """The download failed or is incomplete; one line saying why (and what to do)."""


@dataclass(frozen=True)
class UniProtRequest:
    """What to download (`data.uniprot` in the config) and how hard to try."""

    query: str = DEFAULT_QUERY
    fields: tuple[str, ...] = DEFAULT_FIELDS
    # Rows per EC class: one query per class, `(query) AND (ec:<class>.*)`, first N results.
    per_class_cap: int | None = None
    classes: tuple[str, ...] = EC_CLASSES
    page_size: int = MAX_PAGE_SIZE
    # Field defaults are config/schema.yaml's (`data.uniprot`; tests/test_uniprot.py checks).
    retries: int = 5
    backoff_factor: float = 1.0  # waits 0, 2, 4, 8 ... x factor s (a 429's Retry-After)
    timeout: float = 120.0  # seconds between bytes received
    connect_timeout: float = 10.0  # seconds to connect (TCP and TLS handshake)
    base_url: str = BASE_URL

    def __post_init__(self):
        fields = tuple(dict.fromkeys([*REQUIRED_FIELDS, *self.fields]))  # required ones first
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if self.per_class_cap is not None and self.per_class_cap < 1:
            raise UniProtError(
                f"data.uniprot: per_class_cap must be >= 1, got {self.per_class_cap}"
            )
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise UniProtError(f"data.uniprot: page_size must be 1-500, got {self.page_size}")
        if (
            self.retries < 0
            or self.backoff_factor < 0
            or min(self.timeout, self.connect_timeout) <= 0
        ):
            raise UniProtError(
                "data.uniprot: retries, backoff_factor >= 0 and timeout, connect_timeout > 0 needed"
            )
        bad = [c for c in self.classes if c not in EC_CLASSES]
        if bad:
            raise UniProtError(f"data.uniprot: classes must be top-level EC classes, got {bad}")

    def queries(self) -> list[tuple[str | None, str, int | None]]:
        """(EC class or None, query text, row limit or None) for each search to run."""
        if self.per_class_cap is None:
            return [(None, self.query, None)]
        return [(c, f"({self.query}) AND (ec:{c}.*)", self.per_class_cap) for c in self.classes]


def request_from_config(cfg: dict | None, classes=None) -> UniProtRequest:
    """The `data.uniprot` block as a request; `classes` (data.classes) limits the class queries."""
    cfg = dict(cfg or {})
    known = {f.name for f in dataclasses.fields(UniProtRequest)} - {"classes"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise UniProtError(f"config data.uniprot: unknown key(s) {', '.join(unknown)}")
    if cfg.get("fields") is not None:
        cfg["fields"] = tuple(cfg["fields"])
    if classes:
        cfg["classes"] = tuple(str(c) for c in classes)
    return UniProtRequest(**{k: v for k, v in cfg.items() if v is not None or k == "per_class_cap"})


def make_session(
    retries: int, backoff_factor: float, connect_retries: int | None = None
) -> requests.Session:
    """A session that retries GETs: `retries` times, connection failures `connect_retries`."""
    retry = Retry(
        total=retries,
        connect=retries if connect_retries is None else min(retries, connect_retries),
        read=retries,
        status=retries,
        other=0,
        backoff_factor=backoff_factor,
        backoff_max=120,
        status_forcelist=RETRY_STATUS,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=True,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # requests already asks for gzip (Accept-Encoding) and decodes it: the transfer is gzipped.
    session.headers["User-Agent"] = f"kneurons/{__version__} {requests.utils.default_user_agent()}"
    return session


def _torch_checkpoints() -> str:
    """torch.hub.get_dir()/checkpoints as torch resolves it, without importing torch."""
    home = os.getenv("TORCH_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")
    return os.path.join(home, "hub", "checkpoints")


def offline_hint() -> str:
    """What to do without the network: the three ways to run offline, in one line."""
    return (
        "offline? pass a local UniProt TSV with --config 'data={input: path/to/file.tsv}' (a "
        f"pretrained model also needs its weights in {_torch_checkpoints()}/<name>.pt), or run "
        "the offline planted-motif task with --configfile config/synthetic.yaml"
    )


@dataclass
class _Client:
    """The download's HTTP sessions: `first` until UniProt has answered once, then `rest`."""

    first: requests.Session
    rest: requests.Session
    attempts: int  # connection attempts of a first contact, for the message
    answered: bool = False

    @classmethod
    def for_request(cls, request: UniProtRequest) -> _Client:
        first = make_session(request.retries, request.backoff_factor, FIRST_CONTACT_RETRIES)
        rest = make_session(request.retries, request.backoff_factor)
        return cls(first, rest, 1 + min(request.retries, FIRST_CONTACT_RETRIES))


def _cause(err: Exception) -> Exception:
    """The underlying failure of a requests error (a MaxRetryError's reason), else `err`."""
    cause = err.args[0] if err.args and isinstance(err.args[0], Exception) else err
    return getattr(cause, "reason", None) or cause


def _get(client: _Client, url: str, params: dict | None, request: UniProtRequest):
    """One page, retried by the session; every failure becomes a one-line UniProtError."""
    first_contact = not client.answered
    session = client.first if first_contact else client.rest
    started = time.monotonic()
    try:
        response = session.get(
            url, params=params, timeout=(request.connect_timeout, request.timeout)
        )
    except requests.exceptions.RetryError as err:
        reason = getattr(getattr(err.args[0], "reason", None), "args", [""])[0] or err
        raise UniProtError(f"{url}: still failing after retries ({reason})") from None
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
        raise UniProtError(f"{url}: the response was cut short (connection lost)") from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
        cause = _cause(err)
        # Name resolution failed, connection refused or not answered: NewConnectionError and
        # NameResolutionError are ConnectTimeoutErrors in urllib3 2.
        if first_contact and isinstance(cause, ConnectTimeoutError):
            raise UniProtError(
                f"cannot reach {url} ({type(cause).__name__}, {client.attempts} attempts in "
                f"{time.monotonic() - started:.0f} s); {offline_hint()}"
            ) from None
        raise UniProtError(
            f"{url}: connection failed after retries ({type(cause).__name__}); run again later"
        ) from None
    except requests.exceptions.RequestException as err:
        raise UniProtError(f"{url}: {type(err).__name__}: {err}") from None
    client.answered = True
    if response.status_code != 200:
        message = response.text[:300]
        try:
            message = "; ".join(response.json().get("messages", [])) or message
        except ValueError:
            pass
        message = " ".join(message.split())
        raise UniProtError(f"{response.url}: HTTP {response.status_code}: {message}")
    return response


def _page_lines(response) -> list[str]:
    """The TSV lines of one page (header first); gzip bodies are inflated here if needed."""
    body = response.content
    if body[:2] == b"\x1f\x8b":  # `compressed=true` style body without Content-Encoding
        try:
            body = gzip.decompress(body)
        except (EOFError, OSError):
            raise UniProtError(f"{response.url}: truncated gzip page (cut short)") from None
    text = body.decode("utf-8")
    if text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
        raise UniProtError(f"{response.url}: got an HTML page instead of TSV")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise UniProtError(f"{response.url}: empty page (no TSV header)")
    return lines


def _next_link(headers) -> str | None:
    match = _NEXT_LINK.search(headers.get("Link", ""))
    return match.group(1) if match else None


def _search_pages(
    client: _Client, request: UniProtRequest, query: str, limit: int | None
) -> Iterator[tuple[dict, list[str], list[str]]]:
    """(headers, TSV header fields, data lines) per page, until `limit` rows or the last page."""
    url = f"{request.base_url.rstrip('/')}/uniprotkb/search"
    size = request.page_size if limit is None else min(request.page_size, limit)
    params = {"query": query, "format": "tsv", "fields": ",".join(request.fields), "size": size}
    got = 0
    while url:
        response = _get(client, url, params, request)
        params = None  # the next link carries the query and a cursor
        lines = _page_lines(response)
        header, rows = lines[0].split("\t"), lines[1:]
        for number, row in enumerate(rows, start=2):
            if row.count("\t") != len(header) - 1:
                raise UniProtError(
                    f"{response.url}: line {number} has {row.count(chr(9)) + 1} fields, "
                    f"the header {len(header)} (cut short?)"
                )
        if limit is not None:
            rows = rows[: limit - got]
        got += len(rows)
        yield response.headers, header, rows
        url = None if limit is not None and got >= limit else _next_link(response.headers)


@dataclass
class _Written:
    """What the download has written so far, across its queries."""

    header: list[str] | None = None
    accessions: set = dataclasses.field(default_factory=set)
    release: str | None = None
    release_date: str | None = None


def _check_page(headers, page_header: list[str], query: str, written: _Written) -> int:
    """X-Total-Results of a page, after checking its release and columns against the first."""
    if headers.get("X-Total-Results") is None:
        raise UniProtError(f"{query!r}: response without X-Total-Results header")
    release = headers.get("X-UniProt-Release")
    if written.release is None:
        written.release = release
        written.release_date = headers.get("X-UniProt-Release-Date")
    elif release is not None and release != written.release:
        raise UniProtError(
            f"UniProt release changed during the download ({written.release} -> {release}); "
            "run again"
        )
    if written.header is None:
        missing = {"Entry", "EC number", "Sequence"} - set(page_header)
        if missing:
            raise UniProtError(f"{query!r}: TSV without column(s) {sorted(missing)}")
    elif page_header != written.header:
        raise UniProtError(f"{query!r}: TSV columns changed between pages")
    return int(headers["X-Total-Results"])


def _download_query(client, request, ec_class, query, limit, out, written: _Written) -> dict:
    """Append one query's rows to `out` (skipping accessions already written).

    Progress (rows, rate, ETA) is logged every 30 s; the total is known from the first page.
    """
    total, got, new = None, 0, 0
    progress = Progress(log, f"UniProt class {ec_class}" if ec_class else "UniProt", None, "rows")
    for headers, page_header, rows in _search_pages(client, request, query, limit):
        page_total = _check_page(headers, page_header, query, written)
        if total is None:
            total = page_total
            progress.total = total if limit is None else min(limit, total)
        if written.header is None:
            written.header = page_header
            out.write(("\t".join(page_header) + "\n").encode())
        entry = written.header.index("Entry")
        for row in rows:
            accession = row.split("\t")[entry]
            if accession not in written.accessions:
                written.accessions.add(accession)
                out.write((row + "\n").encode())
                new += 1
        got += len(rows)
        progress.update(len(rows))
    expected = None if total is None else (total if limit is None else min(limit, total))
    if got != expected:
        raise UniProtError(
            f"{query!r}: received {got} of {expected} rows (X-Total-Results {total}): "
            "the download was cut short"
        )
    progress.done()
    return {
        "ec_class": ec_class,
        "query": query,
        "total_results": total,
        "rows": got,
        "new_rows": new,
    }


def download(request: UniProtRequest, dest) -> dict:
    """Run the request's queries into `dest` (TSV.gz, written atomically); return the manifest.

    An entry returned by two class queries (EC numbers in two classes) is written once. The
    gzip header holds no name or time, so the same rows give the same SHA-256.
    """
    dest = Path(dest)
    client = _Client.for_request(request)
    written = _Written()
    with atomic_path(dest) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out:
            queries = [
                _download_query(client, request, ec_class, query, limit, out, written)
                for ec_class, query, limit in request.queries()
            ]
        if not written.accessions:
            raise UniProtError(f"{request.query!r}: UniProt returned no rows (check the query)")
    return {
        "query": request.query,
        "queries": queries,
        "fields": list(request.fields),
        "per_class_cap": request.per_class_cap,
        "url": f"{request.base_url.rstrip('/')}/uniprotkb/search",
        "release": written.release,
        "release_date": written.release_date,
        "downloaded": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": len(written.accessions),
        "file": dest.name,
        "sha256": file_sha256(dest),
    }
